import { createHmac, createPublicKey, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/domain/clock.js';
import { verifyWithJwks } from '../helpers/jwks.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';
import { createTestDatabase } from '../store/pg_harness.js';

const DAY = 86400;
/** Verifik's own example time: the 401 signature must read exactly like this at this instant. */
const START = Date.UTC(2022, 7, 31, 15, 24, 10);
const SIGNATURE_AT_START = 'August 31, 2022 3:24 PM';

const MISSING_HEADER = '{"code":"MissingParameter","message":"missing Authorization header"}';
const badMonths = (name: string, max = 1200) =>
  `{"code":"MissingParameter","message":"${name} must be a whole number of months from 1 to ${max}"}`;
const unauthorized = (dateTime: string, message = 'Certified by Rotor') =>
  `{"code":"Unauthorized","message":"Invalid or expired token.","signature":{"dateTime":"${dateTime}","message":"${message}"}}`;

describe('verifik dialect', () => {
  let server: TestServer;
  let clock: FixedClock;
  let vk: Awaited<ReturnType<typeof createApp>>;

  beforeAll(async () => {
    clock = new FixedClock(START);
    server = await startTestServer({ clock });
    vk = await createApp(server, { name: 'vk', profile: 'verifik' });
  });
  afterAll(async () => { await server.close(); });

  const renew = (token: string | null, query = '?origin=refresh', extra: Record<string, string> = {}) =>
    server.call('GET', `/v2/auth/session${query}`, { headers: token === null ? extra : { authorization: token, ...extra } });
  const jwks = async (name: string) => (await server.call('GET', `/v1/apps/${name}/jwks.json`)).body;

  async function login(subject = 'alice', claims: Record<string, unknown> = { role: 'admin' }, app = vk) {
    const res = await server.call('POST', `/v1/apps/${app.name}/sessions`, {
      json: { subject, claims }, headers: { authorization: `Bearer ${app.appKey}` },
    });
    expect(res.status).toBe(201);
    return res.body as { accessToken: string; sessionId: string; expiresIn: number };
  }

  it('issues a 30-day access token with the verifik claim layout and no refresh token', async () => {
    const pair = await login();
    expect(pair.expiresIn).toBe(30 * DAY);
    expect(pair).not.toHaveProperty('refreshToken');
    const header = decodeJwtPart(pair.accessToken, 0);
    expect(header).toEqual({ alg: 'ES256', typ: 'JWT', kid: header.kid });
    const claims = verifyWithJwks(pair.accessToken, await jwks('vk'));
    expect(Object.keys(claims).sort()).toEqual(['exp', 'iat', 'iss', 'jti', 'role', 'sid', 'sub']);
    expect(claims).toMatchObject({ iss: 'http://rotor.test', sub: 'alice', sid: pair.sessionId, role: 'admin', iat: START / 1000 });
    expect(claims.exp - claims.iat).toBe(30 * DAY);
  });

  it('renews with the raw token: 200, byte-exact body, no-store, same session, N × 30 days', async () => {
    const pair = await login();
    // oracle: Open-Verifik/verifik-documentation docs/authentication/renew-your-token-jwt.mdx:25 (Authorization: `<token>`, raw)
    const res = await renew(pair.accessToken, '?origin=refresh&expiresIn=2');
    expect(res.status).toBe(200);
    // oracle: Open-Verifik/verifik-documentation docs/authentication/renew-your-token-jwt.mdx:134-137
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.text).toBe(`{"accessToken":"${res.body.accessToken}","tokenType":"bearer"}`);
    const header = decodeJwtPart(res.body.accessToken, 0);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    const old = decodeJwtPart(pair.accessToken, 1);
    const claims = verifyWithJwks(res.body.accessToken, await jwks('vk'));
    expect(claims.sid).toBe(old.sid);
    expect(claims.sub).toBe('alice');
    expect(claims.role).toBe('admin');
    expect(claims.jti).not.toBe(old.jti);
    expect(claims.exp - claims.iat).toBe(60 * DAY);
    // The presented token stays valid until its own expiry.
    expect((await renew(pair.accessToken)).status).toBe(200);
    // And the new one renews too.
    expect((await renew(res.body.accessToken)).status).toBe(200);
  });

  it('accepts the Bearer prefix in any case, and expireIn as the older spelling; expiresIn wins', async () => {
    const { accessToken } = await login();
    const months = async (res: Awaited<ReturnType<typeof renew>>) => {
      expect(res.status).toBe(200);
      const c = decodeJwtPart(res.body.accessToken, 1);
      return (c.exp - c.iat) / (30 * DAY);
    };
    // oracle: Open-Verifik/verifik-documentation docs/authentication/renew-your-token-jwt.mdx:32 ("Number that can
    // range from 1 to any number you wish. Each multiple represents a month"); its own examples ask for 120.
    expect(await months(await renew(`Bearer ${accessToken}`, '?origin=refresh&expiresIn=120'))).toBe(120);
    expect(await months(await renew(accessToken, '?origin=refresh&expiresIn=121'))).toBe(121);
    expect(await months(await renew(accessToken, '?origin=refresh&expiresIn=1200'))).toBe(1200);
    expect(await months(await renew(`bearer ${accessToken}`, '?origin=refresh&expireIn=3'))).toBe(3);
    expect(await months(await renew(accessToken, '?origin=refresh&expiresIn=1&expireIn=5'))).toBe(1);
    expect(await months(await renew(accessToken, '?origin=refresh'))).toBe(1);
    expect(await months(await renew(accessToken, ''))).toBe(1);
    const post = await server.call('POST', '/v2/auth/session?origin=refresh&expiresIn=4', { headers: { authorization: accessToken } });
    expect(await months(post)).toBe(4);
    // A body, even an empty one labelled JSON, is ignored.
    for (const body of ['', '{}', 'x=1']) {
      const res = await server.call('POST', '/v2/auth/session?origin=refresh', { body, headers: { authorization: accessToken, 'content-type': 'application/json' } });
      expect(await months(res)).toBe(1);
    }
  });

  it('answers 409 MissingParameter, byte for byte, without a header or with a bad expiresIn', async () => {
    const { accessToken } = await login();
    // oracle: Open-Verifik/verifik-documentation docs/authentication/renew-your-token-jwt.mdx:158-161
    const none = await renew(null);
    expect(none.status).toBe(409);
    expect(none.text).toBe(MISSING_HEADER);
    expect(none.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const empty = await renew('', '?origin=refresh', {});
    expect(empty.status).toBe(409);
    expect(empty.text).toBe(MISSING_HEADER);
    for (const value of ['0', '1201', '1.5', 'abc', '-1', '', '1e2', '+3', ' 2']) {
      const res = await renew(accessToken, `?origin=refresh&expiresIn=${encodeURIComponent(value)}`);
      expect(res.status, value).toBe(409);
      expect(res.text).toBe(badMonths('expiresIn'));
    }
    const older = await renew(accessToken, '?origin=refresh&expireIn=0');
    expect(older.status).toBe(409);
    expect(older.text).toBe(badMonths('expireIn'));
    const twice = await renew(accessToken, '?origin=refresh&expiresIn=1&expiresIn=2');
    expect(twice.status).toBe(409);
    expect(twice.text).toBe(badMonths('expiresIn'));
    for (const query of ['?origin=login', '?origin=refresh&origin=app', '?origin=']) {
      const origin = await renew(accessToken, query);
      expect(origin.status, query).toBe(409);
      expect(origin.text).toBe('{"code":"MissingParameter","message":"origin must be \\"refresh\\" or \\"app\\""}');
    }
  });

  it('caps N at the app policy verifikMaxMonths', async () => {
    const small = await createApp(server, { name: 'vk-small', profile: 'verifik', policy: { verifikMaxMonths: 12 } });
    const { accessToken } = await login('bob', {}, small);
    expect((await renew(accessToken, '?expiresIn=12')).status).toBe(200);
    const res = await renew(accessToken, '?expiresIn=13');
    expect(res.status).toBe(409);
    expect(res.text).toBe(badMonths('expiresIn', 12));
  });

  it('the default cap is 1200 months, and a token renewed for that long still renews', async () => {
    const { accessToken } = await login('ivan');
    const res = await renew(accessToken, '?origin=refresh&expiresIn=1200');
    expect(res.status).toBe(200);
    const claims = verifyWithJwks(res.body.accessToken, await jwks('vk'));
    expect(claims.exp - claims.iat).toBe(1200 * 30 * DAY);
    expect((await renew(res.body.accessToken, '?origin=refresh')).status).toBe(200);
    const policy = (await server.call('GET', '/admin/apps/vk', { headers: admin })).body.policy;
    expect(policy.verifikMaxMonths).toBe(1200);
  });

  it("Verifik's own demo client: every call it makes, spelled as it spells them, answers what it reads", async () => {
    const { accessToken, sessionId } = await login('judy');
    // The demo client sends `Content-Type: application/json` on every call, bodiless GETs included, and
    // the token `Bearer `-prefixed.
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:233
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:269
    const headers = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
    const monthsOf = (token: string) => {
      const c = decodeJwtPart(token, 1);
      return (c.exp - c.iat) / (30 * DAY);
    };

    // authSession(): GET /v2/auth/session?origin=app renews like origin=refresh (same session, 30 days).
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:296-301
    const app = await server.call('GET', '/v2/auth/session?origin=app', { headers: headers(accessToken) });
    expect(app.status).toBe(200);
    expect(app.headers.get('cache-control')).toBe('no-store');
    // It reads `accessToken` (and optionally `user`, which Rotor does not have); `tokenType` as documented.
    // oracle: Open-Verifik/verifik-human-authn-demo-app apps/web/app/[locale]/auth/otp/page.tsx:129-131
    expect(app.text).toBe(`{"accessToken":"${app.body.accessToken}","tokenType":"bearer"}`);
    const renewed = verifyWithJwks(app.body.accessToken, await jwks('vk'));
    expect(renewed.sid).toBe(sessionId);
    expect(monthsOf(app.body.accessToken)).toBe(1);
    // origin=app honours expiresIn the same way.
    const appMonths = await server.call('GET', '/v2/auth/session?origin=app&expiresIn=6', { headers: headers(accessToken) });
    expect(monthsOf(appMonths.body.accessToken)).toBe(6);

    // authSession({ method: 'POST' }): origin travels in a JSON body; bodies are ignored, so it renews.
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:304-307
    const post = await server.call('POST', '/v2/auth/session', { headers: headers(accessToken), body: JSON.stringify({ origin: 'app' }) });
    expect(post.status).toBe(200);
    expect(post.text).toBe(`{"accessToken":"${post.body.accessToken}","tokenType":"bearer"}`);

    // authSessionRefresh(): every month count its settings page offers, read back as accessToken.
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:341-346
    // oracle: Open-Verifik/verifik-human-authn-demo-app apps/web/app/[locale]/settings/api-key/page.tsx:13
    for (const months of [1, 2, 3, 6, 12, 24, 36]) {
      const res = await server.call('GET', `/v2/auth/session?${new URLSearchParams({ origin: 'refresh', expiresIn: String(months) })}`, { headers: headers(accessToken) });
      expect(res.status, String(months)).toBe(200);
      expect(monthsOf(res.body.accessToken)).toBe(months);
    }

    // renewAndRevokeToken(): POST with the body `{}`; it reads `token` (or `accessToken`).
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:359-363
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:367-371
    const fresh = await server.call('POST', '/v2/auth/renew-and-revoke', { headers: headers(accessToken), body: '{}' });
    expect(fresh.status).toBe(200);
    expect(fresh.text).toBe(`{"token":"${fresh.body.token}"}`);
    expect(verifyWithJwks(fresh.body.token, await jwks('vk')).sid).not.toBe(sessionId);
    // Its error path reads `code` and `message` from the root of the body.
    // oracle: Open-Verifik/verifik-human-authn-demo-app packages/api-client/src/index.ts:178-183
    const refused = await server.call('GET', '/v2/auth/session?origin=app', { headers: headers(accessToken) });
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ code: 'Unauthorized', message: 'Invalid or expired token.' });
  });

  it('answers 401 with the signed body for garbage, tampered, expired and revoked tokens', async () => {
    // oracle: Open-Verifik/verifik-documentation docs/authentication/renew-your-token-jwt.mdx:144-151 (the signature's
    // message is Rotor's own, "Certified by Rotor" unless configured: Rotor does not sign as Verifik)
    const expected = unauthorized(SIGNATURE_AT_START);
    const pair = await login('carol');
    const [h, p, s] = pair.accessToken.split('.') as [string, string, string];
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwtPart(pair.accessToken, 1), sub: 'mallory' })).toString('base64url')}.${s}`;
    const noneAlg = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
    for (const token of ['garbage', 'Bearer ', `${h}.${p}`, tampered, noneAlg, `${pair.accessToken}x`, 'a'.repeat(10000)]) {
      const res = await renew(token);
      expect(res.status, token.slice(0, 20)).toBe(401);
      expect(res.text).toBe(expected);
      expect(res.text).not.toContain(pair.accessToken);
    }
    // Revoked through the native API: refused at once.
    const del = await server.call('DELETE', `/v1/apps/vk/sessions/${pair.sessionId}`, { headers: { authorization: `Bearer ${vk.appKey}` } });
    expect(del.status).toBe(204);
    const revoked = await renew(pair.accessToken);
    expect(revoked.status).toBe(401);
    expect(revoked.text).toBe(expected);
  });

  // oracle: Open-Verifik/verifik-documentation docs/authentication/renew-your-token-jwt.mdx:19 ("This service only renews tokens that are still valid")
  it('refuses an expired token (exp is exclusive) and signs the 401 with the current time, 12-hour clock', async () => {
    const { accessToken } = await login('dave');
    const exp = decodeJwtPart(accessToken, 1).exp as number;
    clock.set((exp - 1) * 1000);
    expect((await renew(accessToken)).status).toBe(200);
    clock.set(exp * 1000);
    const res = await renew(accessToken);
    expect(res.status).toBe(401);
    // START + 30 days = September 30, 2022 3:24:10 PM
    expect(res.text).toBe(unauthorized('September 30, 2022 3:24 PM'));
    clock.set(Date.UTC(2023, 0, 5, 0, 7, 59));
    expect((await renew('nope')).text).toBe(unauthorized('January 5, 2023 12:07 AM'));
    clock.set(Date.UTC(2023, 0, 5, 12, 0, 0));
    expect((await renew('nope')).text).toBe(unauthorized('January 5, 2023 12:00 PM'));
    clock.set(START);
  });

  it('refuses the tokens of a disabled subject', async () => {
    const { accessToken } = await login('erin');
    const put = await server.call('PUT', '/admin/apps/vk/subjects/erin', { json: { status: 'disabled' }, headers: admin });
    expect(put.status).toBe(200);
    const res = await renew(accessToken);
    expect(res.status).toBe(401);
    expect(res.text).toBe(unauthorized(SIGNATURE_AT_START));
  });

  it('renew-and-revoke: every session of the subject dies, a fresh 30-day token in a new session', async () => {
    const first = await login('frank');
    const second = await login('frank');
    const other = await login('grace');
    const res = await server.call('POST', '/v2/auth/renew-and-revoke', { headers: { authorization: `Bearer ${first.accessToken}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.text).toBe(`{"token":"${res.body.token}"}`);
    const claims = verifyWithJwks(res.body.token, await jwks('vk'));
    expect(claims).toMatchObject({ sub: 'frank', role: 'admin' });
    expect(claims.exp - claims.iat).toBe(30 * DAY);
    expect([first.sessionId, second.sessionId]).not.toContain(claims.sid);
    for (const old of [first.accessToken, second.accessToken]) {
      const refused = await renew(old);
      expect(refused.status).toBe(401);
      expect(refused.text).toBe(unauthorized(SIGNATURE_AT_START));
    }
    expect((await renew(res.body.token)).status).toBe(200);
    expect((await renew(other.accessToken)).status).toBe(200);
    const again = await server.call('POST', '/v2/auth/renew-and-revoke', { headers: { authorization: first.accessToken } });
    expect(again.status).toBe(401);
    expect(again.text).toBe(unauthorized(SIGNATURE_AT_START));
    const missing = await server.call('POST', '/v2/auth/renew-and-revoke');
    expect(missing.status).toBe(409);
    expect(missing.text).toBe(MISSING_HEADER);
  });

  it('refuses tokens of native and jwtplus apps, and refresh tokens, exactly like invalid tokens', async () => {
    const native = await createApp(server, { name: 'vk-native' });
    const nativePair = await issue(server, native);
    const jp = await createApp(server, { name: 'vk-jwtplus', profile: 'jwtplus' });
    const jpPair = await issue(server, jp, 'alice', { audience: 'web' });
    for (const token of [nativePair.accessToken, nativePair.refreshToken, jpPair.accessToken, jpPair.refreshToken]) {
      for (const path of ['/v2/auth/session?origin=refresh', '/v2/auth/renew-and-revoke']) {
        const res = await server.call(path.includes('renew-and') ? 'POST' : 'GET', path, { headers: { authorization: token } });
        expect(res.status).toBe(401);
        expect(res.text).toBe(unauthorized(SIGNATURE_AT_START));
      }
    }
    // Those sessions are untouched.
    expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: nativePair.refreshToken } })).status).toBe(200);
  });

  it('a token of another verifik app renews only within that app (its kid names it)', async () => {
    const other = await createApp(server, { name: 'vk-other', profile: 'verifik' });
    const { accessToken } = await login('alice', {}, other);
    const res = await renew(accessToken);
    expect(res.status).toBe(200);
    const otherKeys = (await jwks('vk-other')).keys.map((k: any) => k.kid);
    const vkKeys = (await jwks('vk')).keys.map((k: any) => k.kid);
    const kid = decodeJwtPart(res.body.accessToken, 0).kid;
    expect(otherKeys).toContain(kid);
    expect(vkKeys).not.toContain(kid);
  });

  it('keeps renewing across a key rotation; the renewed token carries the new kid', async () => {
    const { accessToken } = await login('heidi');
    const oldKid = decodeJwtPart(accessToken, 0).kid;
    const rotated = await server.call('POST', '/admin/apps/vk/keys/rotate', { headers: admin });
    expect(rotated.status).toBe(200);
    const res = await renew(accessToken);
    expect(res.status).toBe(200);
    const kid = decodeJwtPart(res.body.accessToken, 0).kid;
    expect(kid).not.toBe(oldKid);
    verifyWithJwks(res.body.accessToken, await jwks('vk'));
    // Revoking the old key kills what it signed.
    expect((await server.call('POST', `/admin/apps/vk/keys/${oldKid}/revoke`, { headers: admin })).status).toBeLessThan(300);
    expect((await renew(accessToken)).status).toBe(401);
    expect((await renew(res.body.accessToken)).status).toBe(200);
  });
});

describe('verifik dialect: configured signature message', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ clock: new FixedClock(START), env: { ROTOR_VERIFIK_SIGNATURE_MESSAGE: 'Certified by Example Corp' } });
  });
  afterAll(async () => { await server.close(); });

  it('puts ROTOR_VERIFIK_SIGNATURE_MESSAGE into the 401 signature', async () => {
    const res = await server.call('GET', '/v2/auth/session?origin=refresh', { headers: { authorization: 'Bearer nope' } });
    expect(res.status).toBe(401);
    expect(res.text).toBe(unauthorized(SIGNATURE_AT_START, 'Certified by Example Corp'));
  });
});

describe('verifik dialect: limits and faults', () => {
  it('answers 413 PayloadTooLarge for a huge body and 503 ServiceUnavailable with Retry-After when the store is down', async () => {
    const server = await startTestServer();
    try {
      const vk = await createApp(server, { name: 'vk-down', profile: 'verifik' });
      const { accessToken } = await issue(server, vk);
      const big = await server.call('POST', '/v2/auth/session?origin=refresh', {
        json: { pad: 'x'.repeat(70 * 1024) }, headers: { authorization: accessToken },
      });
      expect(big.status).toBe(413);
      expect(big.body.code).toBe('PayloadTooLarge');
      await server.rotor.close();
      const res = await server.call('GET', '/v2/auth/session?origin=refresh', { headers: { authorization: accessToken } });
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ code: 'ServiceUnavailable', message: 'the token store is unavailable; retry shortly' });
      expect(res.headers.get('retry-after')).toBe('1');
    } finally {
      await server.app.close();
      rmSync(server.dir, { recursive: true, force: true });
    }
  });
});

describe('verifik dialect: hostile tokens (SECURITY-CASES J-01, J-04, J-07, J-13, J-20)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ clock: new FixedClock(START) }); });
  afterAll(async () => { await server.close(); });

  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const hs256 = (header: unknown, payload: unknown, key: string | Buffer) => {
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
  };

  it('answers every forgery with the same 401 and leaves the real token working', async () => {
    const vk = await createApp(server, { name: 'vk-hostile', profile: 'verifik' });
    const { accessToken } = await issue(server, vk);
    const header = decodeJwtPart(accessToken, 0);
    const payload = { ...decodeJwtPart(accessToken, 1), exp: 4102444800 };
    const jwk = (await server.call('GET', '/v1/apps/vk-hostile/jwks.json')).body.keys[0];
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }) as string;
    const sig = accessToken.split('.')[2] as string;
    const forgeries = [
      hs256({ alg: 'HS256', typ: 'JWT', kid: header.kid }, payload, pem),
      hs256({ alg: 'HS256', typ: 'JWT', kid: header.kid }, payload, JSON.stringify(jwk)),
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`,
      hs256({ alg: 'HS256', typ: 'JWT', kid: '/dev/null' }, payload, ''),
      `${b64({ alg: 'ES256', typ: 'JWT', kid: header.kid })}.${b64(payload)}.${'A'.repeat(86)}`,
      `${b64({ alg: 'ES256', typ: 'JWT', kid: header.kid, crit: ['exp'] })}.${b64(payload)}.${sig}`,
      `${b64(header)}.${b64(payload)}.${sig}`,
    ];
    for (const token of forgeries) {
      const res = await server.call('GET', '/v2/auth/session?origin=refresh&expiresIn=120', { headers: { authorization: token } });
      expect(res.status).toBe(401);
      expect(res.text).toBe(unauthorized(SIGNATURE_AT_START));
    }
    expect((await server.call('GET', '/v2/auth/session', { headers: { authorization: accessToken } })).status).toBe(200);
  });
});

describe('verifik dialect on PostgreSQL', () => {
  let server: TestServer;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startTestServer({
      clock: new FixedClock(START), env: { ROTOR_DATABASE_URL: db.url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') },
    });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('renews, renew-and-revokes, and refuses the revoked tokens', async () => {
    const vk = await createApp(server, { name: 'vk-pg', profile: 'verifik' });
    const { accessToken } = await issue(server, vk);
    const res = await server.call('GET', '/v2/auth/session?origin=refresh&expiresIn=3', { headers: { authorization: `Bearer ${accessToken}` } });
    expect(res.status).toBe(200);
    const claims = decodeJwtPart(res.body.accessToken, 1);
    expect(claims.exp - claims.iat).toBe(90 * DAY);
    const fresh = await server.call('POST', '/v2/auth/renew-and-revoke', { headers: { authorization: res.body.accessToken } });
    expect(fresh.status).toBe(200);
    for (const old of [accessToken, res.body.accessToken]) {
      const refused = await server.call('GET', '/v2/auth/session?origin=refresh', { headers: { authorization: old } });
      expect(refused.text).toBe(unauthorized(SIGNATURE_AT_START));
    }
    expect((await server.call('GET', '/v2/auth/session', { headers: { authorization: fresh.body.token } })).status).toBe(200);
  });
});
