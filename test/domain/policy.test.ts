import { describe, expect, it } from 'vitest';
import type { Policy } from '../../src/domain/policy.js';
import { profiles, refusal } from './catalog.js';

const DAY = 86400;
const native = (): Policy => profiles.defaults('native');
const applyPolicyPatch = (base: Policy, patch: unknown) => profiles.applyPatch(base, patch);
/** The refusal a patch over the native defaults ends in, with its detail. */
const refused = (patch: unknown) => refusal(() => applyPolicyPatch(native(), patch), true);

describe('policy: defaults', () => {
  it('native apps default to 15 min access, 30 d refresh, 10 s grace, 90 d sessions, ES256, DPoP allowed, no limits switched on', () => {
    expect(native()).toMatchObject({
      accessTtl: 900, refreshTtl: 30 * DAY, refreshNotBefore: 0, reuseGrace: 10, sessionMaxAge: 90 * DAY,
      sessionIdleTimeout: null, binding: 'off', alg: 'ES256', keyRotationPeriod: null, allowedOrigins: null,
      audience: null, dpop: 'allowed', dpopNonce: false,
    });
  });

  it('no patch (undefined or null) is the base as it is, as a copy the caller may change', () => {
    for (const patch of [undefined, null]) {
      const policy = applyPolicyPatch(native(), patch);
      expect(policy).toEqual(native());
      expect(policy).not.toBe(native());
    }
  });

  it('a patch sets only the fields it names and never changes the base it was applied to', () => {
    const before = structuredClone(native());
    const policy = applyPolicyPatch(native(), { accessTtl: 60, binding: 'record', sessionMaxAge: null });
    expect(policy).toEqual({ ...before, accessTtl: 60, binding: 'record', sessionMaxAge: null });
    expect(native()).toEqual(before);
  });

  it('a stored policy from an older release gets the fields it lacks from its profile\'s defaults', () => {
    const stored: Partial<Policy> = { accessTtl: 120, reuseGrace: 0 };
    expect(profiles.complete('native', stored)).toEqual({ ...native(), accessTtl: 120, reuseGrace: 0 });
  });

  it('a native retiring key stays published as long as an access token lives (refresh tokens are opaque, not signed)', () => {
    expect(profiles.longestTokenLifetime('native', { ...native(), accessTtl: 300, refreshTtl: 30 * DAY })).toBe(300);
  });
});

describe('policy: validation', () => {
  it('a patch that is no JSON object is refused', async () => {
    for (const patch of ['accessTtl=60', 42, true, [{ accessTtl: 60 }]]) {
      expect(await refused(patch)).toBe('invalid_request: policy must be a JSON object');
    }
  });

  it('an unknown field is refused by name, so a typo never leaves a default in force', async () => {
    expect(await refused({ accesTtl: 60 })).toBe('invalid_request: policy has no field "accesTtl"');
    // A long field name is cut in the message.
    expect(await refused({ ['x'.repeat(500)]: 1 })).toBe(`invalid_request: policy has no field "${'x'.repeat(40)}"`);
  });

  it('durations are whole seconds: fractions, strings, negatives, NaN and unsafe integers are refused', async () => {
    for (const value of [1.5, '900', '15m', -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, {}]) {
      expect(await refused({ accessTtl: value })).toBe(`invalid_request: policy.accessTtl must be a whole number of seconds between 1 and ${3650 * DAY}`);
    }
  });

  it('each duration has its bounds: at most ten years; accessTtl at least 1; reuseGrace at most 300; keyRotationPeriod at least 60', async () => {
    expect(applyPolicyPatch(native(), { refreshTtl: 3650 * DAY }).refreshTtl).toBe(3650 * DAY);
    expect(await refused({ refreshTtl: 3650 * DAY + 1 })).toMatch(/^invalid_request: policy\.refreshTtl must be a whole number of seconds between 1 and 315360000 \(or null for off\)$/);
    expect(await refused({ accessTtl: 0 })).toMatch(/policy\.accessTtl must be .* between 1 and/);
    expect(applyPolicyPatch(native(), { reuseGrace: 0 }).reuseGrace).toBe(0);
    expect(applyPolicyPatch(native(), { reuseGrace: 300 }).reuseGrace).toBe(300);
    expect(await refused({ reuseGrace: 301 })).toMatch(/policy\.reuseGrace must be .* between 0 and 300$/);
    expect(applyPolicyPatch(native(), { keyRotationPeriod: 60 }).keyRotationPeriod).toBe(60);
    expect(await refused({ keyRotationPeriod: 59 })).toMatch(/policy\.keyRotationPeriod must be .* between 60 and/);
    expect(await refused({ sessionIdleTimeout: 0 })).toMatch(/policy\.sessionIdleTimeout must be .* between 1 and/);
  });

  it('null switches off only the limits that can be off', async () => {
    const off = applyPolicyPatch(native(), { refreshTtl: null, sessionMaxAge: null, sessionIdleTimeout: null, keyRotationPeriod: null });
    expect(off).toMatchObject({ refreshTtl: null, sessionMaxAge: null, sessionIdleTimeout: null, keyRotationPeriod: null });
    for (const field of ['accessTtl', 'refreshNotBefore', 'reuseGrace']) {
      expect(await refused({ [field]: null })).toMatch(new RegExp(`^invalid_request: policy\\.${field} must be a whole number of seconds between \\d+ and \\d+$`));
    }
  });

  it('refreshNotBefore must be shorter than refreshTtl (checked after the whole patch, whatever the field order)', async () => {
    expect(await refused({ refreshTtl: 3600, refreshNotBefore: 3600 })).toBe('invalid_request: policy.refreshNotBefore must be shorter than policy.refreshTtl');
    expect(await refused({ refreshNotBefore: 3600, refreshTtl: 600 })).toBe('invalid_request: policy.refreshNotBefore must be shorter than policy.refreshTtl');
    expect(applyPolicyPatch(native(), { refreshTtl: 3600, refreshNotBefore: 3599 }).refreshNotBefore).toBe(3599);
    // Without refresh tokens there is nothing for it to be shorter than.
    expect(applyPolicyPatch(native(), { refreshTtl: null, refreshNotBefore: 10 * 365 * DAY }).refreshNotBefore).toBe(10 * 365 * DAY);
  });

  it('binding, alg and dpop accept only their listed values', async () => {
    expect(applyPolicyPatch(native(), { binding: 'useragent', alg: 'EdDSA', dpop: 'required' })).toMatchObject({ binding: 'useragent', alg: 'EdDSA', dpop: 'required' });
    expect(await refused({ binding: 'ip' })).toBe('invalid_request: policy.binding must be one of off, record, useragent');
    expect(await refused({ alg: 'none' })).toBe('invalid_request: policy.alg must be one of ES256, EdDSA, RS256, HS256');
    expect(await refused({ alg: 'es256' })).toBe('invalid_request: policy.alg must be one of ES256, EdDSA, RS256, HS256');
    expect(await refused({ dpop: true })).toBe('invalid_request: policy.dpop must be one of off, allowed, required');
  });

  it('dpopNonce is a boolean', async () => {
    expect(applyPolicyPatch(native(), { dpopNonce: true }).dpopNonce).toBe(true);
    expect(await refused({ dpopNonce: 'yes' })).toBe('invalid_request: policy.dpopNonce must be true or false');
  });

  it('allowedOrigins are kept canonical (lower case, no default port) and without duplicates', () => {
    const policy = applyPolicyPatch(native(), { allowedOrigins: ['https://App.Example.com:443', 'https://app.example.com', 'http://localhost:5173'] });
    expect(policy.allowedOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(applyPolicyPatch(policy, { allowedOrigins: null }).allowedOrigins).toBeNull();
  });

  it('allowedOrigins refuses what is no exact origin, a non-array, and more than 100 origins', async () => {
    expect(await refused({ allowedOrigins: ['https://app.example.com/path'] })).toMatch(/^invalid_request: policy\.allowedOrigins: "https:\/\/app\.example\.com\/path" is not an exact origin: /);
    expect(await refused({ allowedOrigins: [42] })).toBe('invalid_request: policy.allowedOrigins: "42" is not an exact origin: it is not a string');
    expect(await refused({ allowedOrigins: 'https://app.example.com' })).toMatch(/^invalid_request: policy\.allowedOrigins must be null or an array of at most 100 origins/);
    const many = Array.from({ length: 101 }, (_, i) => `https://a${i}.example.com`);
    expect(await refused({ allowedOrigins: many })).toMatch(/at most 100 origins/);
    expect(applyPolicyPatch(native(), { allowedOrigins: many.slice(0, 100) }).allowedOrigins).toHaveLength(100);
  });

  it('audience is null or 1 to 256 printable characters', async () => {
    expect(applyPolicyPatch(native(), { audience: 'https://api.example.com' }).audience).toBe('https://api.example.com');
    expect(applyPolicyPatch(native(), { audience: 'a'.repeat(256) }).audience).toHaveLength(256);
    const message = 'invalid_request: policy.audience must be null or a string of 1 to 256 printable characters';
    for (const value of ['', 'a'.repeat(257), 'api\nexample', 'tab\there', 7]) expect(await refused({ audience: value })).toBe(message);
  });

  it('one bad field refuses the whole patch: nothing of it is applied', async () => {
    const base = native();
    expect(await refusal(() => applyPolicyPatch(base, { accessTtl: 60, reuseGrace: 9999 }))).toBe('invalid_request');
    expect(base.accessTtl).toBe(900);
  });
});
