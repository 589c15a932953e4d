import type { Dialect } from '../dialect.js';
import { abitmediaFormat } from './format.js';
import { abitmediaApi, PREFIXES } from './routes.js';

/** SPEC §4.4 Abitmedia: `POST /v1/refreshToken` (JSON, form or multipart) and a Basic `GET /v1/auth` login. */
export const abitmedia: Dialect<'abitmedia'> = {
  name: 'abitmedia',
  domain: {
    profile: 'abitmedia',
    format: abitmediaFormat,
    defaults: { alg: 'HS256', accessTtl: 3600, reuseGrace: 0, sessionMaxAge: null },
    policyFields: [],
    keyless: true,
    publicByDefault: true,
  },
  http: {
    api: abitmediaApi,
    routeClasses: PREFIXES.flatMap((prefix) => [
      { url: `${prefix}/v1/refreshToken`, class: 'refresh' as const },
      { url: `${prefix}/v1/auth`, class: 'login' as const },
    ]),
    // A login at the root names no app. (A refresh body, multipart too, is parsed before the check: its token names the app.)
    appHiddenUntilHandled: (_request, route) => route === '/v1/auth',
  },
};
