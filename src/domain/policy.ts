import { invalidRequest } from './errors.js';
import { canonicalOrigin, originProblem } from './origins.js';

export const PROFILES = ['native', 'verifik', 'jwtplus', 'flolive', 'fib', 'abitmedia'] as const;
export type Profile = (typeof PROFILES)[number];

import { ALGORITHMS, type Algorithm } from '../crypto/types.js';

export { ALGORITHMS, type Algorithm };

export const BINDINGS = ['off', 'record', 'useragent'] as const;
export type Binding = (typeof BINDINGS)[number];

/** An app's token policy. Durations are whole seconds; `null` switches a limit off. */
export interface Policy {
  accessTtl: number;
  /** `null` for profiles that issue no refresh token (verifik). */
  refreshTtl: number | null;
  refreshNotBefore: number;
  reuseGrace: number;
  sessionMaxAge: number | null;
  sessionIdleTimeout: number | null;
  binding: Binding;
  alg: Algorithm;
  keyRotationPeriod: number | null;
  verifikMaxMonths: number;
  flolivePermitExpiredAccess: boolean;
  /**
   * Browser origins allowed to call Rotor for this app (SPEC §4.6): narrows ROTOR_CORS_ORIGINS, never
   * widens it; `null` (default) = every origin ROTOR_CORS_ORIGINS allows. Canonical exact origins.
   */
  allowedOrigins: string[] | null;
  /** The `aud` of native access tokens whose session names none (RFC 9068); null: the app's id. */
  audience: string | null;
  /** DPoP (RFC 9449): `off`, `allowed` (a proof binds; bearer still works), `required` (every refresh proves). */
  dpop: DpopMode;
  /** Demand server-issued DPoP nonces (`use_dpop_nonce` + `DPoP-Nonce`). */
  dpopNonce: boolean;
}

export const DPOP_MODES = ['off', 'allowed', 'required'] as const;
export type DpopMode = (typeof DPOP_MODES)[number];

const DAY = 86400;

const BASE: Policy = {
  accessTtl: 15 * 60,
  refreshTtl: 30 * DAY,
  refreshNotBefore: 0,
  reuseGrace: 10,
  sessionMaxAge: 90 * DAY,
  sessionIdleTimeout: null,
  binding: 'off',
  alg: 'ES256',
  keyRotationPeriod: null,
  verifikMaxMonths: 1200,
  flolivePermitExpiredAccess: true,
  allowedOrigins: null,
  audience: null,
  dpop: 'allowed',
  dpopNonce: false,
};

/** SPEC §3: each profile's defaults. Dialect source systems have no absolute session lifetime. */
export const PROFILE_DEFAULTS: Record<Profile, Policy> = {
  native: BASE,
  verifik: { ...BASE, accessTtl: 30 * DAY, refreshTtl: null, reuseGrace: 0, sessionMaxAge: null },
  jwtplus: { ...BASE, accessTtl: 3600, refreshTtl: 3 * 3600, refreshNotBefore: 60, reuseGrace: 0, sessionMaxAge: null, binding: 'record' },
  flolive: { ...BASE, alg: 'HS256', accessTtl: 3600, reuseGrace: 0, sessionMaxAge: null },
  fib: { ...BASE, alg: 'EdDSA', accessTtl: 300, refreshTtl: DAY, reuseGrace: 0, sessionMaxAge: null },
  abitmedia: { ...BASE, alg: 'HS256', accessTtl: 3600, reuseGrace: 0, sessionMaxAge: null },
};

/** Upper bounds that keep arithmetic safe and tokens sane (ten years). */
const MAX_DURATION = 3650 * DAY;
/** Grace is a retry window, not a second lifetime. */
const MAX_REUSE_GRACE = 300;

/**
 * Profiles whose dialect has no client authentication on its renewal call (SPEC §1): their refresh
 * tokens are redeemed keyless at the dialect endpoint, so such an app cannot be confidential.
 */
export const KEYLESS_PROFILES: ReadonlySet<Profile> = new Set(['verifik', 'flolive', 'fib', 'abitmedia']);

/** SPEC §1: every profile is public by default except jwtplus, whose tokens live in the app's backend. */
export const defaultPublic = (profile: Profile): boolean => profile !== 'jwtplus';

export function isProfile(value: unknown): value is Profile {
  return typeof value === 'string' && (PROFILES as readonly string[]).includes(value);
}

function duration(field: string, value: unknown, opts: { nullable: boolean; min?: number; max?: number }): number | null {
  if (value === null && opts.nullable) return null;
  const min = opts.min ?? 0;
  const max = opts.max ?? MAX_DURATION;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidRequest(`policy.${field} must be a whole number of seconds between ${min} and ${max}${opts.nullable ? ' (or null for off)' : ''}`);
  }
  return value;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidRequest(`policy.${field} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/** At most this many origins per app. */
const MAX_ALLOWED_ORIGINS = 100;

/** `allowedOrigins`: null, or an array of exact origins (`scheme://host[:port]`), kept canonical and without duplicates. */
function allowedOrigins(value: unknown): string[] | null {
  if (value === null) return null;
  if (!Array.isArray(value) || value.length > MAX_ALLOWED_ORIGINS) {
    throw invalidRequest(`policy.allowedOrigins must be null or an array of at most ${MAX_ALLOWED_ORIGINS} origins such as "https://app.example.com"`);
  }
  const origins = new Set<string>();
  for (const entry of value) {
    const canonical = typeof entry === 'string' ? canonicalOrigin(entry) : null;
    if (canonical === null) {
      const problem = typeof entry === 'string' ? originProblem(entry) ?? 'it is not an origin' : 'it is not a string';
      throw invalidRequest(`policy.allowedOrigins: ${JSON.stringify(String(entry).slice(0, 80))} is not an exact origin: ${problem}`);
    }
    origins.add(canonical);
  }
  return [...origins];
}

/**
 * Applies a caller's partial policy over `base`, validating every field.
 * Unknown fields are refused so that a typo never silently leaves a default in force.
 */
export function applyPolicyPatch(base: Policy, patch: unknown): Policy {
  if (patch === undefined || patch === null) return { ...base };
  if (typeof patch !== 'object' || Array.isArray(patch)) throw invalidRequest('policy must be a JSON object');
  const next: Policy = { ...base };
  for (const [field, value] of Object.entries(patch as Record<string, unknown>)) {
    switch (field) {
      case 'accessTtl': next.accessTtl = duration(field, value, { nullable: false, min: 1 }) as number; break;
      case 'refreshTtl': next.refreshTtl = duration(field, value, { nullable: true, min: 1 }); break;
      case 'refreshNotBefore': next.refreshNotBefore = duration(field, value, { nullable: false }) as number; break;
      case 'reuseGrace': next.reuseGrace = duration(field, value, { nullable: false, max: MAX_REUSE_GRACE }) as number; break;
      case 'sessionMaxAge': next.sessionMaxAge = duration(field, value, { nullable: true, min: 1 }); break;
      case 'sessionIdleTimeout': next.sessionIdleTimeout = duration(field, value, { nullable: true, min: 1 }); break;
      case 'keyRotationPeriod': next.keyRotationPeriod = duration(field, value, { nullable: true, min: 60 }); break;
      case 'binding': next.binding = oneOf(field, value, BINDINGS); break;
      case 'alg': next.alg = oneOf(field, value, ALGORITHMS); break;
      case 'verifikMaxMonths': next.verifikMaxMonths = duration(field, value, { nullable: false, min: 1, max: 1200 }) as number; break;
      case 'flolivePermitExpiredAccess':
        if (typeof value !== 'boolean') throw invalidRequest('policy.flolivePermitExpiredAccess must be true or false');
        next.flolivePermitExpiredAccess = value;
        break;
      case 'allowedOrigins': next.allowedOrigins = allowedOrigins(value); break;
      case 'audience':
        if (value !== null && (typeof value !== 'string' || value.length === 0 || value.length > 256 || /[\u0000-\u001f\u007f]/.test(value))) {
          throw invalidRequest('policy.audience must be null or a string of 1 to 256 printable characters');
        }
        next.audience = value;
        break;
      case 'dpop': next.dpop = oneOf(field, value, DPOP_MODES); break;
      case 'dpopNonce':
        if (typeof value !== 'boolean') throw invalidRequest('policy.dpopNonce must be true or false');
        next.dpopNonce = value;
        break;
      default:
        throw invalidRequest(`policy has no field "${field.slice(0, 40)}"`);
    }
  }
  if (next.refreshTtl !== null && next.refreshNotBefore >= next.refreshTtl) {
    throw invalidRequest('policy.refreshNotBefore must be shorter than policy.refreshTtl');
  }
  return next;
}

/** A stored policy with the fields a later release added filled in with the profile's defaults. */
export function completePolicy(profile: Profile, stored: Partial<Policy>): Policy {
  return { ...PROFILE_DEFAULTS[profile], ...stored };
}

/** The longest any token signed under this policy can live: how long a retiring key stays published. */
export function longestTokenLifetime(profile: Profile, policy: Policy): number {
  if (profile === 'verifik') return Math.max(policy.accessTtl, policy.verifikMaxMonths * 30 * DAY);
  // Opaque refresh tokens are not signed; JWT ones (every dialect but verifik) are.
  return profile === 'native' ? policy.accessTtl : Math.max(policy.accessTtl, policy.refreshTtl ?? 0);
}
