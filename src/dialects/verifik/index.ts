import type { Dialect } from '../dialect.js';
import { verifikFormat } from './format.js';
import { MONTH, verifikMaxMonths } from './policy.js';
import { verifikApi } from './routes.js';

/** SPEC §4.4 Verifik: one long-lived access token, renewed by presenting it (N × 30 days). */
export const verifik: Dialect<'verifik'> = {
  name: 'verifik',
  domain: {
    profile: 'verifik',
    format: verifikFormat,
    defaults: { accessTtl: 30 * 86400, refreshTtl: null, reuseGrace: 0, sessionMaxAge: null },
    policyFields: [verifikMaxMonths],
    keyless: true,
    publicByDefault: true,
    longestAccessLifetime: (policy) => verifikMaxMonths.of(policy) * MONTH,
  },
  http: {
    api: verifikApi,
    // renew-and-revoke also answers a presented token with a new one: guessing it is guessing a renewal.
    routeClasses: [{ url: '/v2/auth/session', class: 'refresh' }, { url: '/v2/auth/renew-and-revoke', class: 'refresh' }],
  },
};
