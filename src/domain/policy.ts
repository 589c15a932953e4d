import { invalidRequest } from './errors.js';
import { canonicalOrigin, originProblem } from './origins.js';

/**
 * The name of an app's profile: `native`, or the name of one of the dialects the domain was given
 * (src/dialects/index.ts, injected through `Profiles`). `Profiles.has` tells whether a name is one.
 */
export type Profile = string;

import { ALGORITHMS, type Algorithm } from '../crypto/types.js';

export { ALGORITHMS, type Algorithm };

export const BINDINGS = ['off', 'record', 'useragent'] as const;
export type Binding = (typeof BINDINGS)[number];

export const DPOP_MODES = ['off', 'allowed', 'required'] as const;
export type DpopMode = (typeof DPOP_MODES)[number];

/** The fields of every app's policy that are the core's (not a dialect's). Durations are whole seconds; `null` switches a limit off. */
export interface CorePolicy {
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

/**
 * An app's token policy: the core's fields and every dialect's own (`verifikMaxMonths`, …), which each
 * dialect declares as a `PolicyField` and reads through it. SPEC §3: every app's policy carries them all.
 */
export type Policy = CorePolicy & { [dialectField: string]: unknown };

/**
 * One policy field a dialect declares (src/dialects/<name>/policy.ts): its name, default and validation.
 * Every app's policy has it, whatever the app's profile, as every release before the dialect folders did.
 */
export interface PolicyField<T = unknown> {
  readonly name: string;
  readonly default: T;
  /** The value to store, or `invalidRequest` naming `policy.<name>` and what it must be. */
  parse(value: unknown): T;
  /** This field of `policy` (its default when a stored policy predates it). */
  of(policy: Policy): T;
}

export function policyField<T>(spec: { name: string; default: T; parse(value: unknown): T }): PolicyField<T> {
  return { ...spec, of: (policy) => (policy[spec.name] === undefined ? spec.default : (policy[spec.name] as T)) };
}

export const DAY = 86400;

/** The core's defaults: the native profile's, and what each dialect's defaults start from. */
export const CORE_DEFAULTS: CorePolicy = {
  accessTtl: 15 * 60,
  refreshTtl: 30 * DAY,
  refreshNotBefore: 0,
  reuseGrace: 10,
  sessionMaxAge: 90 * DAY,
  sessionIdleTimeout: null,
  binding: 'off',
  alg: 'ES256',
  keyRotationPeriod: null,
  allowedOrigins: null,
  audience: null,
  dpop: 'allowed',
  dpopNonce: false,
};

/**
 * The core's defaults with the dialects' fields where they have always stood, after `keyRotationPeriod`:
 * the admin API and the CLI send the policy object as it is, so its key order is part of the answer.
 */
export function withDialectFields(core: CorePolicy, fields: readonly PolicyField[]): Policy {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(core)) {
    out[name] = value;
    if (name === 'keyRotationPeriod') for (const field of fields) out[field.name] = field.default;
  }
  return out as Policy;
}

/** Upper bounds that keep arithmetic safe and tokens sane (ten years). */
const MAX_DURATION = 3650 * DAY;
/** Grace is a retry window, not a second lifetime. */
const MAX_REUSE_GRACE = 300;

/** A whole number in [min, max] (or null when `nullable`), else `invalidRequest` naming `policy.<field>`. */
export function duration(field: string, value: unknown, opts: { nullable: boolean; min?: number; max?: number }): number | null {
  if (value === null && opts.nullable) return null;
  const min = opts.min ?? 0;
  const max = opts.max ?? MAX_DURATION;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidRequest(`policy.${field} must be a whole number of seconds between ${min} and ${max}${opts.nullable ? ' (or null for off)' : ''}`);
  }
  return value;
}

/** `true` or `false`, else `invalidRequest` naming `policy.<field>`. */
export function flag(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidRequest(`policy.${field} must be true or false`);
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

/** One core field of a caller's patch, validated; `undefined` when `field` is no core field. */
function coreValue(field: string, value: unknown): { value: unknown } | undefined {
  switch (field) {
    case 'accessTtl': return { value: duration(field, value, { nullable: false, min: 1 }) };
    case 'refreshTtl': return { value: duration(field, value, { nullable: true, min: 1 }) };
    case 'refreshNotBefore': return { value: duration(field, value, { nullable: false }) };
    case 'reuseGrace': return { value: duration(field, value, { nullable: false, max: MAX_REUSE_GRACE }) };
    case 'sessionMaxAge': return { value: duration(field, value, { nullable: true, min: 1 }) };
    case 'sessionIdleTimeout': return { value: duration(field, value, { nullable: true, min: 1 }) };
    case 'keyRotationPeriod': return { value: duration(field, value, { nullable: true, min: 60 }) };
    case 'binding': return { value: oneOf(field, value, BINDINGS) };
    case 'alg': return { value: oneOf(field, value, ALGORITHMS) };
    case 'allowedOrigins': return { value: allowedOrigins(value) };
    case 'audience':
      if (value !== null && (typeof value !== 'string' || value.length === 0 || value.length > 256 || /[\u0000-\u001f\u007f]/.test(value))) {
        throw invalidRequest('policy.audience must be null or a string of 1 to 256 printable characters');
      }
      return { value };
    case 'dpop': return { value: oneOf(field, value, DPOP_MODES) };
    case 'dpopNonce': return { value: flag(field, value) };
    default: return undefined;
  }
}

/**
 * Applies a caller's partial policy over `base`, validating every field: the core's here, each
 * dialect's by the `PolicyField` it declared (`dialectFields`, by name). Unknown fields are refused so
 * that a typo never silently leaves a default in force.
 */
export function applyPolicyPatch(base: Policy, patch: unknown, dialectFields: ReadonlyMap<string, PolicyField>): Policy {
  if (patch === undefined || patch === null) return { ...base };
  if (typeof patch !== 'object' || Array.isArray(patch)) throw invalidRequest('policy must be a JSON object');
  const next: Record<string, unknown> = { ...base };
  for (const [field, value] of Object.entries(patch as Record<string, unknown>)) {
    const core = coreValue(field, value);
    const own = core === undefined ? dialectFields.get(field) : undefined;
    if (core !== undefined) next[field] = core.value;
    else if (own !== undefined) next[field] = own.parse(value);
    else throw invalidRequest(`policy has no field "${field.slice(0, 40)}"`);
  }
  const result = next as Policy;
  if (result.refreshTtl !== null && result.refreshNotBefore >= result.refreshTtl) {
    throw invalidRequest('policy.refreshNotBefore must be shorter than policy.refreshTtl');
  }
  return result;
}
