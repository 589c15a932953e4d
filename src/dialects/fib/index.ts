import type { Dialect } from '../dialect.js';
import { fibFormat } from './format.js';
import { fibLogin } from './login.js';
import { BASE, fibApi, PREFIXES } from './routes.js';

/** SPEC §4.4 FIB: Ed25519 login, PATCH renewal and logout at `/auth/api/v1/authentication-management/…`. */
export const fib: Dialect<'fib'> = {
  name: 'fib',
  domain: {
    profile: 'fib',
    format: fibFormat,
    defaults: { alg: 'EdDSA', accessTtl: 300, refreshTtl: 86400, reuseGrace: 0, sessionMaxAge: null },
    policyFields: [],
    keyless: true,
    publicByDefault: true,
    login: fibLogin,
  },
  http: {
    api: fibApi,
    // POST …/session logs in; the same path's PATCH renews.
    routeClasses: PREFIXES.flatMap((prefix) => [
      { url: `${prefix}${BASE}/session`, class: 'login' as const, methods: ['POST'] },
      { url: `${prefix}${BASE}/session`, class: 'refresh' as const },
    ]),
    // A login at the root names no app: it goes to whichever FIB app knows the key.
    appHiddenUntilHandled: (request, route) => route === `${BASE}/session` && request.method === 'POST',
  },
};
