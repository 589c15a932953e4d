import { describe, expect, it } from 'vitest';
import { decodeJwt } from '../../src/crypto/jwt.js';
import { DIALECTS } from '../../src/dialects/index.js';
import { Profiles } from '../../src/domain/profiles.js';
import { domainRotor } from '../helpers/rotor.js';

/**
 * Each dialect's token format through the domain, on a pinned clock: what it mints (the claims of its
 * layout and nothing of the engine's beyond them), how its own parse functions read the result, and that
 * the engine verifies the access token until its expiry and not a second after.
 */
const LAYOUTS: Record<string, { access: string[]; refresh: string[] | null; typ: string | undefined }> = {
  verifik: { access: ['exp', 'iat', 'iss', 'jti', 'plan', 'sid', 'sub'], refresh: null, typ: 'JWT' },
  jwtplus: { access: ['exp', 'iat', 'iss', 'jid', 'nbf', 'plan', 'sub'], refresh: ['exp', 'iat', 'iss', 'jid', 'nbf', 'type'], typ: 'JWT' },
  flolive: { access: ['exp', 'iat', 'jti', 'plan', 'sid'], refresh: ['exp', 'iat', 'jti', 'sid', 'typ'], typ: 'JWT' },
  fib: { access: ['exp', 'jti', 'sub'], refresh: ['acjti', 'exp', 'jti', 'sub'], typ: 'JWT' },
  abitmedia: { access: ['exp', 'iat', 'jti', 'plan', 'sid', 'sub'], refresh: ['exp', 'iat', 'jti', 'sid', 'sub', 'typ'], typ: 'JWT' },
};

const profiles = new Profiles(DIALECTS.map((d) => d.domain));

describe.each(DIALECTS.map((d) => d.name))('%s token format', (name) => {
  const dialect = DIALECTS.find((d) => d.name === name)!;
  const format = dialect.domain.format;

  it('has a layout table here', () => {
    expect(LAYOUTS[name]).toBeDefined();
  });

  it('mints its layout at the pinned time; its parse functions read it; the engine verifies it until exp', async () => {
    const { rotor, clock } = await domainRotor();
    const now = Math.floor(clock.now() / 1000);
    const { app } = await rotor.apps.create({ name: `fmt-${name}`, profile: name });
    const issued = await rotor.issueSession(app, { subject: 'alice', claims: { plan: 'pro' } });
    const layout = LAYOUTS[name]!;

    const access = decodeJwt(issued.accessToken)!;
    expect(Object.keys(access.payload).sort()).toEqual(layout.access);
    expect(access.header.typ).toBe(layout.typ);
    expect(access.payload.exp).toBe(now + profiles.defaults(name).accessTtl);
    if ('iat' in access.payload) expect(access.payload.iat).toBe(now);
    expect(format.isAccessToken({ header: access.header, payload: access.payload })).toBe(true);
    expect(format.sessionOf(access.payload)).not.toBeNull();
    expect(format.refreshIdOf({ header: access.header, payload: access.payload })).toBeNull();

    if (layout.refresh === null) {
      expect(issued.refreshToken ?? null).toBeNull();
    } else {
      const refresh = decodeJwt(issued.refreshToken!)!;
      expect(Object.keys(refresh.payload).sort()).toEqual(layout.refresh);
      expect(refresh.payload.exp).toBe(now + profiles.defaults(name).refreshTtl!);
      expect(format.isAccessToken({ header: refresh.header, payload: refresh.payload })).toBe(false);
      expect(format.refreshIdOf({ header: refresh.header, payload: refresh.payload })).not.toBeNull();
    }

    const verified = await rotor.checkAccess(issued.accessToken, { profile: name });
    expect(verified.ok && verified.access.app.id).toBe(app.id);
    clock.advance(profiles.defaults(name).accessTtl);
    expect(await rotor.checkAccess(issued.accessToken, { profile: name })).toEqual({ ok: false, reason: 'invalid' });
    await rotor.close();
  });

  it('refuses its reserved claims in a caller\'s claims', async () => {
    const { rotor } = await domainRotor();
    const { app } = await rotor.apps.create({ name: `fmt-${name}-r`, profile: name });
    for (const claim of format.reservedClaims) {
      await expect(rotor.issueSession(app, { subject: 'alice', claims: { [claim]: 'x' } }), claim).rejects.toMatchObject({ code: 'invalid_request' });
    }
    await rotor.close();
  });
});

describe('Profiles (native and the injected dialects)', () => {
  it('lists native first, then the dialects in src/dialects/index.ts order, as the profile error has always said', () => {
    expect(profiles.names).toEqual(['native', 'verifik', 'jwtplus', 'flolive', 'fib', 'abitmedia']);
    expect(() => profiles.parse('nope')).toThrow('profile must be one of native, verifik, jwtplus, flolive, fib, abitmedia');
  });

  it('puts every dialect\'s policy fields, with their defaults, after keyRotationPeriod in every profile\'s defaults', () => {
    for (const name of profiles.names) {
      const keys = Object.keys(profiles.defaults(name));
      expect(keys.slice(8, 12), name).toEqual(['keyRotationPeriod', 'verifikMaxMonths', 'flolivePermitExpiredAccess', 'allowedOrigins']);
      expect(profiles.defaults(name)).toMatchObject({ verifikMaxMonths: 1200, flolivePermitExpiredAccess: true });
    }
  });

  it('validates a dialect\'s own field by its declaration, for an app of any profile, with the messages of before', () => {
    const base = profiles.defaults('native');
    expect(profiles.applyPatch(base, { verifikMaxMonths: 12 }).verifikMaxMonths).toBe(12);
    expect(() => profiles.applyPatch(base, { verifikMaxMonths: 0 })).toThrow('policy.verifikMaxMonths must be a whole number of seconds between 1 and 1200');
    expect(() => profiles.applyPatch(base, { flolivePermitExpiredAccess: 'no' })).toThrow('policy.flolivePermitExpiredAccess must be true or false');
    expect(() => profiles.applyPatch(base, { verifikMaxMonth: 1 })).toThrow('policy has no field "verifikMaxMonth"');
  });

  it('completes a stored policy that predates a field with the profile\'s defaults', () => {
    const { verifikMaxMonths: _, ...stored } = profiles.defaults('verifik');
    expect(profiles.complete('verifik', stored)).toEqual(profiles.defaults('verifik'));
  });

  it('keeps keys published for the longest token: Verifik\'s N × 30 days, JWT refresh tokens, not opaque ones', () => {
    expect(profiles.longestTokenLifetime('verifik', profiles.defaults('verifik'))).toBe(1200 * 30 * 86400);
    expect(profiles.longestTokenLifetime('native', profiles.defaults('native'))).toBe(15 * 60);
    expect(profiles.longestTokenLifetime('fib', profiles.defaults('fib'))).toBe(86400);
  });
});
