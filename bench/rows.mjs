// @ts-check
/**
 * The rows of the table, in order. Each row is data: which server, which renewal call, which store
 * and settings. A dialect row runs when its endpoint answers (the probe in harness.mjs); a row whose
 * `requires` returns a reason is listed as skipped.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

/** @type {() => string | null} */
const postgresBuilt = () => (existsSync(join(ROOT, 'src/store/postgres')) && existsSync(join(ROOT, 'dist/src/store/postgres'))
  ? null : 'src/store/postgres is not built yet');

/** Dialect apps renew right away: jwtplus's 60 s refreshNotBefore would refuse a chain at once. */
/** @type {import('./harness.mjs').Row[]} */
const DIALECTS = ['verifik', 'jwtplus', 'flolive', 'fib', 'abitmedia'].map((profile) => ({
  id: `${profile}-sqlite`, label: `Rotor ${profile} renewal, SQLite`, target: 'rotor', protocol: profile, store: 'sqlite', profile,
  policy: profile === 'jwtplus' ? { refreshNotBefore: 0 } : {},
}));

/** @type {import('./harness.mjs').Row[]} */
export const ROWS = [
  { id: 'native-sqlite', label: 'Rotor native /v1/refresh, SQLite', target: 'rotor', protocol: 'native', store: 'sqlite', disk: true },
  // Issue 15: the same refresh on sessions bound to a DPoP key (dpopJkt at issuance; the app requires DPoP),
  // a fresh ES256 proof by the session's key on every call, signed in the load generator.
  {
    id: 'native-dpop-sqlite', label: 'Rotor native /v1/refresh + DPoP proof, SQLite', target: 'rotor', protocol: 'native-dpop', store: 'sqlite',
    policy: { dpop: 'required' }, dpop: true, comparesTo: 'native-sqlite',
  },
  // The same with server nonces (RFC 9449 §8; policy dpopNonce): each proof carries one, each answer a new one.
  {
    id: 'native-dpop-nonce-sqlite', label: 'Rotor native /v1/refresh + DPoP proof with nonce, SQLite', target: 'rotor', protocol: 'native-dpop', store: 'sqlite',
    policy: { dpop: 'required', dpopNonce: true }, dpop: true, comparesTo: 'native-sqlite',
  },
  { id: 'oauth2-sqlite', label: 'Rotor /oauth2/token, SQLite', target: 'rotor', protocol: 'oauth2', store: 'sqlite' },
  {
    id: 'oauth2-dpop-sqlite', label: 'Rotor /oauth2/token + DPoP proof, SQLite', target: 'rotor', protocol: 'oauth2-dpop', store: 'sqlite',
    policy: { dpop: 'required' }, dpop: true, comparesTo: 'oauth2-sqlite',
  },
  { id: 'native-postgres', label: 'Rotor native /v1/refresh, PostgreSQL', target: 'rotor', protocol: 'native', store: 'postgres', requires: postgresBuilt, disk: true },
  {
    id: 'native-dpop-postgres', label: 'Rotor native /v1/refresh + DPoP proof, PostgreSQL', target: 'rotor', protocol: 'native-dpop', store: 'postgres',
    requires: postgresBuilt, policy: { dpop: 'required' }, dpop: true, comparesTo: 'native-postgres',
  },
  ...DIALECTS,
  { id: 'native-workers2', label: 'Rotor native, SQLite, ROTOR_WORKERS=2', target: 'rotor', protocol: 'native', store: 'sqlite', env: { ROTOR_WORKERS: '2' } },
  { id: 'native-10k', label: 'Rotor native, SQLite, 10,000 live sessions', target: 'rotor', protocol: 'native', store: 'sqlite', fill: 10_000 },
  { id: 'native-1m', label: 'Rotor native, SQLite, 1,000,000 live sessions', target: 'rotor', protocol: 'native', store: 'sqlite', fill: 1_000_000 },
  // Issue 12: a million sessions with 100 rotations of history each. With one row per session that
  // history is the generation number (101): the rows are the ones 100 rotations leave, and no others.
  {
    id: 'native-1m-h100', label: 'Rotor native, SQLite, 1,000,000 sessions × 100 rotations', target: 'rotor', protocol: 'native',
    store: 'sqlite', fill: 1_000_000, fillGeneration: 101,
  },
  { id: 'oidc-provider', label: 'node-oidc-provider, refresh_token grant, in-memory', target: 'oidc', protocol: 'oidc', baseline: true },
  { id: 'floor-sign', label: 'floor: node:http + one ES256 JWT', target: 'floor', protocol: 'floor', floorMode: 'sign' },
  { id: 'floor-sqlite', label: 'floor: + naive better-sqlite3 rotation', target: 'floor', protocol: 'floor', floorMode: 'sqlite' },
];
