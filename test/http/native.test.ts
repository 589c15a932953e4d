import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWithJwks } from '../helpers/jwks.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

describe('native API over HTTP (SQLite)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  const refresh = (refreshToken: unknown) => server.call('POST', '/v1/refresh', { json: { refreshToken } });

  it('issues a TokenPair with no-store and an access token that verifies against the published JWKS', async () => {
    const app = await createApp(server, { name: 'jwks-es' });
    const res = await server.call('POST', `/v1/apps/${app.name}/sessions`, {
      json: { subject: 'alice', claims: { role: 'admin' } }, headers: { authorization: `Bearer ${app.appKey}` },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(Object.keys(res.body).sort()).toEqual(['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'sessionId', 'tokenType']);
    expect(res.body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900, refreshExpiresIn: 2592000 });
    expect(res.body.refreshToken).toMatch(/^rt_[A-Za-z0-9_-]{76}$/);
    const header = decodeJwtPart(res.body.accessToken, 0);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    const jwks = (await server.call('GET', `/v1/apps/${app.name}/jwks.json`)).body;
    const claims = verifyWithJwks(res.body.accessToken, jwks);
    // RFC 9068: the app is the issuer (SPEC §1), the audience defaults to the app id, client_id is the app id.
    expect(claims).toMatchObject({ iss: `http://rotor.test/apps/${app.id}`, aud: app.id, client_id: app.id, sub: 'alice', sid: res.body.sessionId, role: 'admin' });
    expect(claims.exp - claims.iat).toBe(900);
    expect(Object.keys(claims).sort()).toEqual(['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'nbf', 'role', 'sid', 'sub']);
    const global = (await server.call('GET', '/.well-known/jwks.json')).body;
    expect(global.keys.map((k: any) => k.kid)).toContain(header.kid);
  });

  for (const alg of ['EdDSA', 'RS256'] as const) {
    it(`signs with ${alg} and publishes a verifiable public JWK without private parts`, async () => {
      const app = await createApp(server, { name: `jwks-${alg.toLowerCase()}`, policy: { alg } });
      const pair = await issue(server, app);
      const jwks = (await server.call('GET', `/v1/apps/${app.name}/jwks.json`)).body;
      expect(decodeJwtPart(pair.accessToken, 0).alg).toBe(alg);
      expect(verifyWithJwks(pair.accessToken, jwks).sub).toBe('alice');
      for (const key of jwks.keys) for (const part of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(key).not.toHaveProperty(part);
    });
  }

  it('never publishes HMAC keys', async () => {
    const app = await createApp(server, { name: 'jwks-hs', policy: { alg: 'HS256' } });
    await issue(server, app);
    expect((await server.call('GET', `/v1/apps/${app.name}/jwks.json`)).body).toEqual({ keys: [] });
    const global = (await server.call('GET', '/.well-known/jwks.json')).body;
    expect(global.keys.every((k: any) => k.kty !== 'oct')).toBe(true);
  });

  it('50 concurrent refreshes of one token with grace: every response carries the same successor', async () => {
    const app = await createApp(server, { name: 'race-grace', policy: { reuseGrace: 10 } });
    const pair = await issue(server, app);
    const results = await Promise.all(Array.from({ length: 50 }, () => refresh(pair.refreshToken)));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    const successors = new Set(results.map((r) => r.body.refreshToken));
    expect(successors.size).toBe(1);
    const [successor] = [...successors];
    expect(successor).not.toBe(pair.refreshToken);
    // No fork: exactly one live refresh token, and it rotates.
    expect((await refresh(successor)).status).toBe(200);
    const metrics = (await server.call('GET', '/metrics')).text;
    expect(metrics).toMatch(/rotor_refresh_total\{outcome="retry",reason="grace"\} 49/);
  });

  it('50 concurrent refreshes without grace: exactly one succeeds, none gets a 5xx', async () => {
    const app = await createApp(server, { name: 'race-strict', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const results = await Promise.all(Array.from({ length: 50 }, () => refresh(pair.refreshToken)));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s >= 500)).toHaveLength(0);
    expect(statuses.filter((s) => s === 400)).toHaveLength(49);
    for (const r of results.filter((x) => x.status === 400)) expect(r.body.code).toBe('invalid_refresh_token');
  });

  it('reuse after the grace window revokes the whole session: refresh and access tokens', async () => {
    const app = await createApp(server, { name: 'reuse', policy: { reuseGrace: 0 } });
    const r0 = await issue(server, app);
    const r1 = (await refresh(r0.refreshToken)).body;
    const r2 = (await refresh(r1.refreshToken)).body;
    const replay = await refresh(r0.refreshToken);
    expect(replay.status).toBe(400);
    expect(replay.body).toMatchObject({ code: 'invalid_refresh_token', detail: 'reused' });
    expect((await refresh(r2.refreshToken)).body.detail).toBe('revoked');
    const introspect = await server.call('POST', '/v1/introspect', { json: { token: r2.accessToken }, headers: { authorization: `Bearer ${app.appKey}` } });
    expect(introspect.body).toEqual({ active: false });
    const sessions = await server.call('GET', `/v1/apps/${app.name}/sessions?subject=alice`, { headers: { authorization: `Bearer ${app.appKey}` } });
    expect(sessions.body.sessions[0]).toMatchObject({ id: r0.sessionId, revokeReason: 'reuse' });
    expect(server.logs.join('')).toContain('"event":"reuse_detected"');
  });

  it('answers every catalogue error as problem+json with its stable code', async () => {
    const app = await createApp(server, { name: 'errors', policy: { reuseGrace: 0, refreshNotBefore: 3600, refreshTtl: 7200 } });
    const bearer = { authorization: `Bearer ${app.appKey}` };
    const cases: [string, Promise<any>, number, string, string?][] = [
      ['invalid_request', refresh(undefined), 400, 'invalid_request'],
      ['invalid_json', server.call('POST', '/v1/refresh', { body: '{"refreshToken":', headers: { 'content-type': 'application/json' } }), 400, 'invalid_request'],
      ['invalid_app_key', server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'a' }, headers: { authorization: 'Bearer nope' } }), 401, 'invalid_app_key'],
      ['app_not_found', server.call('POST', '/v1/apps/nosuchapp/sessions', { json: { subject: 'a' }, headers: bearer }), 404, 'app_not_found'],
      ['unknown', refresh('rt_' + 'x'.repeat(43)), 400, 'invalid_refresh_token', 'unknown'],
      ['malformed', refresh('not a token'), 400, 'invalid_refresh_token', 'malformed'],
      ['subject', server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: '' }, headers: bearer }), 400, 'invalid_request'],
      ['too large', server.call('POST', '/v1/refresh', { json: { refreshToken: 'x'.repeat(70_000) } }), 413, 'payload_too_large'],
      ['media type', server.call('POST', '/v1/refresh', { body: 'x', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type'],
      ['not found', server.call('GET', '/v1/nothing'), 404, 'not_found'],
    ];
    for (const [name, promise, status, code, detail] of cases) {
      const res = await promise;
      expect(res.status, name).toBe(status);
      expect(res.headers.get('content-type'), name).toBe('application/problem+json; charset=utf-8');
      expect(Object.keys(res.body).sort(), name).toEqual(['code', 'detail', 'status', 'title', 'type']);
      expect(res.body.code, name).toBe(code);
      expect(res.body.status, name).toBe(status);
      if (detail) expect(res.body.detail, name).toBe(detail);
    }
    const pair = await issue(server, app);
    expect((await refresh(pair.refreshToken)).body.detail).toBe('not_yet_valid');
    await server.call('PUT', `/admin/apps/${app.name}/subjects/alice`, { json: { status: 'disabled' }, headers: admin });
    const disabled = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'alice' }, headers: bearer });
    expect(disabled.status).toBe(403);
    expect(disabled.body.code).toBe('subject_disabled');
  });

  it('revokes by refresh or access token (RFC 7009: always 200) and lists and revokes sessions', async () => {
    const app = await createApp(server, { name: 'revoke' });
    const bearer = { authorization: `Bearer ${app.appKey}` };
    const a = await issue(server, app, 'bob');
    const b = await issue(server, app, 'bob');
    const c = await issue(server, app, 'bob');
    expect((await server.call('POST', '/v1/revoke', { json: { token: 'garbage' } })).status).toBe(200);
    const revoked = await server.call('POST', '/v1/revoke', { json: { token: a.accessToken } });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({});
    expect((await refresh(a.refreshToken)).body.detail).toBe('revoked');
    expect((await server.call('DELETE', `/v1/apps/${app.name}/sessions/${b.sessionId}`, { headers: bearer })).status).toBe(204);
    expect((await refresh(b.refreshToken)).body.detail).toBe('revoked');
    const listed = await server.call('GET', `/v1/apps/${app.name}/sessions?subject=bob`, { headers: bearer });
    expect(listed.body.sessions).toHaveLength(3);
    expect(Object.keys(listed.body.sessions.find((s: any) => s.id === c.sessionId)).sort()).toEqual(
      ['createdAt', 'expiresAt', 'id', 'ip', 'lastIp', 'lastRenewedAt', 'lastUserAgent', 'subject', 'userAgent'],
    );
    const all = await server.call('DELETE', `/v1/apps/${app.name}/subjects/bob/sessions`, { headers: bearer });
    expect(all.body).toEqual({ revoked: 1 });
    expect((await refresh(c.refreshToken)).body.detail).toBe('revoked');
  });

  it('introspects refresh and access tokens of its own app only', async () => {
    const app = await createApp(server, { name: 'intro' });
    const other = await createApp(server, { name: 'intro-other' });
    const pair = await issue(server, app);
    const ask = (token: string, key: string) => server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${key}` } });
    expect((await ask(pair.accessToken, app.appKey)).body).toMatchObject({ active: true, tokenType: 'access_token', sub: 'alice', sid: pair.sessionId });
    expect((await ask(pair.refreshToken, app.appKey)).body).toMatchObject({ active: true, tokenType: 'refresh_token', sid: pair.sessionId });
    expect((await ask(pair.accessToken, other.appKey)).body).toEqual({ active: false });
    expect((await ask(pair.refreshToken, other.appKey)).body).toEqual({ active: false });
  });

  it('password login: unknown user and wrong password answer alike', async () => {
    const app = await createApp(server, { name: 'login' });
    await server.call('PUT', `/admin/apps/${app.name}/subjects/dana`, { json: { password: 'correct horse', claims: { role: 'user' } }, headers: admin });
    const ok = await server.call('POST', `/v1/apps/${app.name}/login`, { json: { username: 'dana', password: 'correct horse' } });
    expect(ok.status).toBe(200);
    expect(decodeJwtPart(ok.body.accessToken, 1)).toMatchObject({ sub: 'dana', role: 'user' });
    const wrong = await server.call('POST', `/v1/apps/${app.name}/login`, { json: { username: 'dana', password: 'nope' } });
    const unknown = await server.call('POST', `/v1/apps/${app.name}/login`, { json: { username: 'erin', password: 'nope' } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.text).toBe(unknown.text);
    // A name no subject can have is unknown too, on every store (PostgreSQL refuses a NUL in text).
    for (const username of ['da\u0000na', 'dana\n']) {
      const odd = await server.call('POST', `/v1/apps/${app.name}/login`, { json: { username, password: 'correct horse' } });
      expect(odd.status, JSON.stringify(username)).toBe(401);
      expect(odd.text).toBe(unknown.text);
    }
  });

  it('key rotation: old tokens keep verifying while the key is retiring; a revoked key kills its tokens at once', async () => {
    const app = await createApp(server, { name: 'rotate' });
    const before = await issue(server, app);
    const oldKid = decodeJwtPart(before.accessToken, 0).kid;
    const rotated = await server.call('POST', `/admin/apps/${app.name}/keys/rotate`, { headers: admin });
    expect(rotated.status).toBe(200);
    expect(rotated.body.kid).not.toBe(oldKid);
    const after = await issue(server, app);
    expect(decodeJwtPart(after.accessToken, 0).kid).toBe(rotated.body.kid);
    const jwks = (await server.call('GET', `/v1/apps/${app.name}/jwks.json`)).body;
    expect(jwks.keys.map((k: any) => k.kid).sort()).toEqual([oldKid, rotated.body.kid].sort());
    const ask = (token: string) => server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${app.appKey}` } });
    expect((await ask(before.accessToken)).body.active).toBe(true);
    expect((await server.call('POST', `/admin/apps/${app.name}/keys/${oldKid}/revoke`, { headers: admin })).status).toBe(200);
    expect((await ask(before.accessToken)).body.active).toBe(false);
    expect((await ask(after.accessToken)).body.active).toBe(true);
    const jwksAfter = (await server.call('GET', `/v1/apps/${app.name}/jwks.json`)).body;
    expect(jwksAfter.keys.map((k: any) => k.kid)).toEqual([rotated.body.kid]);
  });

  // PostgreSQL's counterpart reads every table: test/store/postgres.test.ts.
  it.skipIf((process.env.ROTOR_TEST_STORE ?? 'sqlite') !== 'sqlite')('stores no refresh token or app key in the database files', async () => {
    const app = await createApp(server, { name: 'at-rest', policy: { reuseGrace: 10 } });
    const pair = await issue(server, app);
    const next = (await refresh(pair.refreshToken)).body;
    const files = readdirSync(server.dir).filter((f) => f.startsWith('rotor.db'));
    expect(files.length).toBeGreaterThan(0);
    const dump = Buffer.concat(files.map((f) => readFileSync(join(server.dir, f))));
    for (const secret of [pair.refreshToken, next.refreshToken, app.appKey, app.appKey.slice(-43), pair.refreshToken.slice(3)]) {
      expect(dump.includes(Buffer.from(secret))).toBe(false);
    }
  });

  it('never writes a token or key into the logs', async () => {
    const app = await createApp(server, { name: 'logs', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const next = (await refresh(pair.refreshToken)).body;
    await refresh(pair.refreshToken); // reuse: logged as an event
    const text = server.logs.join('');
    expect(text).toContain('reuse_detected');
    for (const secret of [pair.refreshToken, pair.accessToken, next.refreshToken, next.accessToken, app.appKey]) {
      expect(text.includes(secret)).toBe(false);
    }
  });

  it('operations: healthz, readyz, metrics', async () => {
    expect((await server.call('GET', '/healthz')).status).toBe(200);
    expect((await server.call('GET', '/readyz')).status).toBe(200);
    const metrics = await server.call('GET', '/metrics');
    expect(metrics.text).toContain('rotor_http_requests_total');
    expect(metrics.text).toContain('rotor_http_request_duration_seconds_bucket');
    expect(metrics.text).toMatch(/rotor_refresh_total\{outcome="reuse",reason="reused"\}/);
    expect(metrics.text).toContain('rotor_reuse_detected_total');
    const openapi = await server.call('GET', '/openapi.json');
    expect(openapi.body.openapi).toBe('3.1.0');
  });
});

describe('store unavailable', () => {
  it('answers 503 with Retry-After, and readyz is 503', async () => {
    const server = await startTestServer();
    const app = await createApp(server, { name: 'down' });
    const pair = await issue(server, app);
    await server.rotor.close();
    const res = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.body.code).toBe('store_unavailable');
    expect((await server.call('GET', '/readyz')).status).toBe(503);
    await server.close(); // its directory and (on PostgreSQL) its schema too: closing the closed store again is a no-op
  });
});

describe('methods', () => {
  it('answers 405 with Allow for a known path under another method, and ignores method overrides', async () => {
    const server = await startTestServer();
    try {
      const get = await server.call('GET', '/v1/refresh');
      expect(get.status).toBe(405);
      expect(get.headers.get('allow')).toBe('POST');
      expect(get.body.code).toBe('method_not_allowed');
      const override = await server.call('GET', '/v1/refresh', { headers: { 'x-http-method-override': 'POST' } });
      expect(override.status).toBe(405);
      const query = await server.call('GET', '/v1/refresh?refreshToken=rt_x');
      expect(query.status).toBe(405);
      expect(query.text).not.toContain('rt_x');
    } finally {
      await server.close();
    }
  });
});
