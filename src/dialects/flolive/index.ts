import type { Dialect } from '../dialect.js';
import { floliveFormat } from './format.js';
import { flolivePermitExpiredAccess } from './policy.js';
import { floliveApi, PREFIXES } from './routes.js';

/** SPEC §4.4 floLIVE: `PUT /api/v2/auth/token` renews a pair (an expired access token may come along). */
export const flolive: Dialect<'flolive'> = {
  name: 'flolive',
  domain: {
    profile: 'flolive',
    format: floliveFormat,
    defaults: { alg: 'HS256', accessTtl: 3600, reuseGrace: 0, sessionMaxAge: null },
    policyFields: [flolivePermitExpiredAccess],
    keyless: true,
    publicByDefault: true,
  },
  http: {
    api: floliveApi,
    routeClasses: PREFIXES.map((prefix) => ({ url: `${prefix}/api/v2/auth/token`, class: 'refresh' as const })),
  },
};
