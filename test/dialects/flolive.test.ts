import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/domain/clock.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

/** The header without `typ`, which the formats owe (the vendor's sample shows `"typ":"JWT"`; see the todo at the end). */
const headerWithoutTyp = (token: string) => {
  const { typ, ...rest } = decodeJwtPart(token, 0);
  expect([undefined, 'JWT']).toContain(typ);
  return rest;
};

const DAY = 86400;
const PATH = '/api/v2/auth/token';
const INVALID = '{"errorCode":"AUTH_1002","errorMessage":"Invalid token","content":"","pageable":""}';
const badRequest = (message: string) => `{"errorCode":"REQ_1001","errorMessage":"${message}","content":"","pageable":""}`;
const success = (token: string, refreshToken: string, validityTime = 3600) =>
  `{"errorCode":"","errorMessage":"","content":[{"token":"${token}","refreshToken":"${refreshToken}","validityTime":${validityTime}}],` +
  '"pageable":{"page":0,"size":10,"totalPages":1,"totalElements":1}}';

describe('flolive dialect', () => {
  let server: TestServer;
  let clock: FixedClock;
  let flo: Awaited<ReturnType<typeof createApp>>;
  let kid: string;

  beforeAll(async () => {
    clock = new FixedClock(Date.UTC(2026, 2, 1, 12, 0, 0));
    server = await startTestServer({ clock });
    flo = await createApp(server, { name: 'flo', profile: 'flolive' });
    const put = await server.call('PUT', '/admin/apps/flo/subjects/u-1', { json: { claims: { uid: 'u-1', email: 'ana@example.com' } }, headers: admin });
    expect(put.status).toBe(200);
    kid = (await server.call('GET', '/admin/apps/flo/keys', { headers: admin })).body.keys[0].kid;
  });
  afterAll(async () => { await server.close(); });

  const renew = (body: unknown, headers: Record<string, string> = {}, path = PATH) => server.call('PUT', path, { json: body, headers });

  it('issues the floLIVE layout: HS256 with kid; access = subject claims + sid jti iat exp; refresh typ "Refresh"', async () => {
    const pair = await issue(server, flo, 'u-1');
    expect(pair.expiresIn).toBe(3600);
    expect(pair.refreshExpiresIn).toBe(30 * DAY);
    expect(headerWithoutTyp(pair.accessToken)).toEqual({ alg: 'HS256', kid });
    expect(headerWithoutTyp(pair.refreshToken)).toEqual({ alg: 'HS256', kid });
    const access = decodeJwtPart(pair.accessToken, 1);
    const now = Math.floor(clock.now() / 1000);
    expect(access).toEqual({ uid: 'u-1', email: 'ana@example.com', sid: pair.sessionId, jti: access.jti, iat: now, exp: now + 3600 });
    expect(Object.keys(access)).toEqual(['uid', 'email', 'sid', 'jti', 'iat', 'exp']);
    const refresh = decodeJwtPart(pair.refreshToken, 1);
    expect(refresh).toEqual({ sid: pair.sessionId, jti: refresh.jti, iat: now, exp: now + 30 * DAY, typ: 'Refresh' });
    expect(Object.keys(refresh)).toEqual(['sid', 'jti', 'iat', 'exp', 'typ']);
    expect(refresh.jti).not.toBe(access.jti);
  });

  it('renews a pair: the content/pageable envelope byte for byte, no-store, same session, new tokens', async () => {
    const pair = await issue(server, flo, 'u-1');
    clock.advance(5);
    const res = await renew({ token: pair.accessToken, refreshToken: pair.refreshToken });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const [item] = res.body.content;
    expect(res.text).toBe(success(item.token, item.refreshToken));
    expect(item.token).not.toBe(pair.accessToken);
    expect(item.refreshToken).not.toBe(pair.refreshToken);
    const access = decodeJwtPart(item.token, 1);
    const now = Math.floor(clock.now() / 1000);
    expect(access).toEqual({ uid: 'u-1', email: 'ana@example.com', sid: pair.sessionId, jti: access.jti, iat: now, exp: now + 3600 });
    expect(headerWithoutTyp(item.token)).toEqual({ alg: 'HS256', kid });
    const refresh = decodeJwtPart(item.refreshToken, 1);
    expect(refresh).toEqual({ sid: pair.sessionId, jti: refresh.jti, iat: now, exp: now + 30 * DAY, typ: 'Refresh' });

    // The renewed pair renews again.
    const again = await renew({ token: item.token, refreshToken: item.refreshToken });
    expect(again.status).toBe(200);
  });

  it('the native API renews a floLIVE pair too, in the floLIVE layout', async () => {
    const pair = await issue(server, flo, 'u-1');
    const res = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(res.status).toBe(200);
    expect(decodeJwtPart(res.body.refreshToken, 1).typ).toBe('Refresh');
    expect(decodeJwtPart(res.body.accessToken, 1).sid).toBe(pair.sessionId);
    const dialect = await renew({ token: res.body.accessToken, refreshToken: res.body.refreshToken });
    expect(dialect.status).toBe(200);
  });

  it('reuse of a consumed refresh token (grace 0) revokes the session', async () => {
    const pair = await issue(server, flo, 'u-1');
    const first = await renew({ token: pair.accessToken, refreshToken: pair.refreshToken });
    expect(first.status).toBe(200);
    const [item] = first.body.content;
    const replay = await renew({ token: pair.accessToken, refreshToken: pair.refreshToken });
    expect(replay.status).toBe(401);
    expect(replay.text).toBe(INVALID);
    expect(replay.headers.get('cache-control')).toBe('no-store');
    // The successor dies with its session, and so does its access token.
    const successor = await renew({ token: item.token, refreshToken: item.refreshToken });
    expect(successor.status).toBe(401);
    expect(successor.text).toBe(INVALID);
    const introspect = await server.call('POST', '/v1/introspect', { json: { token: item.token }, headers: { authorization: `Bearer ${flo.appKey}` } });
    expect(introspect.body).toEqual({ active: false });
  });

  it('refuses a pair from two different sessions and leaves the refresh token unused', async () => {
    const a = await issue(server, flo, 'u-1');
    const b = await issue(server, flo, 'u-1');
    const mixed = await renew({ token: a.accessToken, refreshToken: b.refreshToken });
    expect(mixed.status).toBe(401);
    expect(mixed.text).toBe(INVALID);
    const own = await renew({ token: b.accessToken, refreshToken: b.refreshToken });
    expect(own.status).toBe(200);
  });

  it('accepts an expired access token by default, and refuses it when flolivePermitExpiredAccess is false', async () => {
    const app = await createApp(server, { name: 'flo-exp', profile: 'flolive' });
    const pair = await issue(server, app, 'u-2');
    clock.advance(3600); // exp is exclusive: the access token has just expired
    const ok = await renew({ token: pair.accessToken, refreshToken: pair.refreshToken });
    expect(ok.status).toBe(200);
    const [item] = ok.body.content;

    const patched = await server.call('PATCH', '/admin/apps/flo-exp', { json: { policy: { flolivePermitExpiredAccess: false } }, headers: admin });
    expect(patched.status).toBe(200);
    clock.advance(3600); // past the app cache, and past the new access token's expiry
    const refused = await renew({ token: item.token, refreshToken: item.refreshToken });
    expect(refused.status).toBe(401);
    expect(refused.text).toBe(INVALID);
    // Refused before the refresh token was touched: a fresh access token of the session still works with it.
    clock.advance(-1);
    const fresh = await renew({ token: item.token, refreshToken: item.refreshToken });
    expect(fresh.status).toBe(200);
  });

  it('refuses an expired refresh token and a revoked session', async () => {
    const app = await createApp(server, { name: 'flo-time', profile: 'flolive', policy: { refreshTtl: 600 } });
    const old = await issue(server, app, 'u-3');
    clock.advance(600);
    const expired = await renew({ token: old.accessToken, refreshToken: old.refreshToken });
    expect(expired.status).toBe(401);
    expect(expired.text).toBe(INVALID);

    const pair = await issue(server, app, 'u-3');
    const revoke = await server.call('DELETE', `/v1/apps/flo-time/sessions/${pair.sessionId}`, { headers: { authorization: `Bearer ${app.appKey}` } });
    expect(revoke.status).toBe(204);
    const revoked = await renew({ token: pair.accessToken, refreshToken: pair.refreshToken });
    expect(revoked.status).toBe(401);
    expect(revoked.text).toBe(INVALID);
  });

  it('never takes a refresh token for an access token or the other way round', async () => {
    const pair = await issue(server, flo, 'u-1');
    for (const body of [
      { token: pair.refreshToken, refreshToken: pair.refreshToken },
      { token: pair.accessToken, refreshToken: pair.accessToken },
      { token: pair.refreshToken, refreshToken: pair.accessToken },
    ]) {
      const res = await renew(body);
      expect(res.status).toBe(401);
      expect(res.text).toBe(INVALID);
    }
    expect((await renew({ token: pair.accessToken, refreshToken: pair.refreshToken })).status).toBe(200);
  });

  it('refuses forged, tampered and foreign tokens alike', async () => {
    const pair = await issue(server, flo, 'u-1');
    const [h, p, s] = pair.accessToken.split('.') as [string, string, string];
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwtPart(pair.accessToken, 1), uid: 'root' })).toString('base64url')}.${s}`;
    const forged = `${h}.${p}.${createHmac('sha256', '').update(`${h}.${p}`).digest('base64url')}`;
    const none = `${Buffer.from('{"alg":"none","kid":"x"}').toString('base64url')}.${p}.`;
    for (const token of [tampered, forged, none, 'garbage', '']) {
      const res = await renew({ token, refreshToken: pair.refreshToken });
      expect(res.status).toBe(401);
      expect(res.text).toBe(INVALID);
    }

    // Tokens of a native app, of an Abitmedia app (also HS256, same claim names) and of another floLIVE app
    // through this app's base URL.
    const native = await createApp(server, { name: 'flo-native' });
    const abit = await createApp(server, { name: 'flo-abit', profile: 'abitmedia' });
    const other = await createApp(server, { name: 'flo-other', profile: 'flolive' });
    for (const app of [native, abit]) {
      const foreign = await issue(server, app, 'u-1');
      const res = await renew({ token: foreign.accessToken, refreshToken: foreign.refreshToken });
      expect(res.status).toBe(401);
      expect(res.text).toBe(INVALID);
    }
    const otherPair = await issue(server, other, 'u-1');
    const viaFlo = await renew({ token: otherPair.accessToken, refreshToken: otherPair.refreshToken }, {}, `/flolive/flo${PATH}`);
    expect(viaFlo.status).toBe(401);
    expect(viaFlo.text).toBe(INVALID);
    // Untouched by all of that: the other app's pair still renews, at the root and under its own base URL.
    const own = await renew({ token: otherPair.accessToken, refreshToken: otherPair.refreshToken }, {}, `/flolive/flo-other${PATH}`);
    expect(own.status).toBe(200);
    expect(await (await renew({ token: pair.accessToken, refreshToken: pair.refreshToken })).status).toBe(200);
  });

  it('answers 400 REQ_1001 naming the problem for bodies that are not JSON or lack a field', async () => {
    const pair = await issue(server, flo, 'u-1');
    const cases: [Parameters<TestServer['call']>[2], string][] = [
      [{ body: '{"token":', headers: { 'content-type': 'application/json' } }, 'the request body is not valid JSON'],
      [{ body: 'token=a&refreshToken=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 'The request body must be JSON (Content-Type: application/json)'],
      [{ json: [pair.accessToken] }, 'The request body must be a JSON object'],
      [{ json: { refreshToken: pair.refreshToken } }, 'Missing required field: token'],
      [{ json: { token: pair.accessToken } }, 'Missing required field: refreshToken'],
      [{ json: { token: pair.accessToken, refreshToken: 7 } }, 'Field refreshToken must be a string'],
    ];
    for (const [options, message] of cases) {
      const res = await server.call('PUT', PATH, options);
      expect(res.status, message).toBe(400);
      expect(res.text).toBe(badRequest(message));
      expect(res.text).not.toContain(pair.accessToken);
    }
    // Nothing was consumed by the bad requests.
    expect((await renew({ token: pair.accessToken, refreshToken: pair.refreshToken })).status).toBe(200);
  });

  it('an unknown app or one of another profile in the base URL is 404 in the floLIVE envelope', async () => {
    const pair = await issue(server, flo, 'u-1');
    for (const path of [`/flolive/nope${PATH}`, `/flolive/flo-native${PATH}`]) {
      const res = await renew({ token: pair.accessToken, refreshToken: pair.refreshToken }, {}, path);
      expect(res.status).toBe(404);
      expect(res.text).toBe('{"errorCode":"REQ_1004","errorMessage":"Unknown app","content":"","pageable":""}');
    }
  });
  it('hostile requests get a 4xx in the floLIVE envelope, never a 5xx', async () => {
    const cases: [RequestInit, number][] = [
      [{ headers: { 'content-type': 'application/json' }, body: '{"token":{"$ne":null},"refreshToken":"x"}' }, 400],
      [{ headers: { 'content-type': 'application/json' }, body: '{"__proto__":{"admin":true}}' }, 400],
      [{ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'x'.repeat(70 * 1024), refreshToken: 'y' }) }, 413],
      [{ headers: { 'content-type': 'application/json' }, body: '{"token":"a.b.c","refreshToken":"a.b.c"}' }, 401],
      [{ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'e'.repeat(9000), refreshToken: 'r'.repeat(9000) }) }, 401],
      [{}, 400],
    ];
    for (const [init, status] of cases) {
      const res = await fetch(server.url + PATH, { method: 'PUT', ...init });
      const body = await res.json() as Record<string, unknown>;
      expect(res.status).toBe(status);
      expect(Object.keys(body)).toEqual(['errorCode', 'errorMessage', 'content', 'pageable']);
    }
  });
});

describe('flolive dialect, store down', () => {
  it('answers 503 SYS_1003 with Retry-After, in the floLIVE envelope', async () => {
    const server = await startTestServer();
    try {
      const app = await createApp(server, { name: 'flo-down', profile: 'flolive' });
      const pair = await issue(server, app, 'u-1');
      await server.rotor.close();
      const res = await server.call('PUT', PATH, { json: { token: pair.accessToken, refreshToken: pair.refreshToken } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(res.text).toBe('{"errorCode":"SYS_1003","errorMessage":"Service temporarily unavailable, retry shortly","content":"","pageable":""}');
    } finally {
      await server.close();
    }
  });
});

