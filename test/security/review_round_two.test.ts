import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FixedClock } from '../../src/domain/clock.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Security review round two (docs/security.md, rows S2-*): each finding of the outside review, attacked
 * from outside over HTTP as the reviewer did. Every test here failed on the code before its fix.
 * ROTOR_TEST_STORE=postgres runs the same file on PostgreSQL (test/suites_on_postgres.test.ts).
 */
describe('security review round two', () => {
  let server: TestServer;
  let clock: FixedClock;
  beforeAll(async () => {
    server = await startTestServer({ fixedClock: true });
    clock = server.clock as FixedClock;
  });
  afterAll(async () => { await server.close(); });

  const refresh = (refreshToken: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
    server.call('POST', '/v1/refresh', { json: { refreshToken, ...extra }, headers });
  const sessionsOf = async (app: { name: string; appKey: string }, subject: string) =>
    (await server.call('GET', `/v1/apps/${app.name}/sessions?subject=${encodeURIComponent(subject)}`, { headers: { authorization: `Bearer ${app.appKey}` } })).body.sessions as any[];
  const jwtplusSign = (app: { id: string; appKey: string }, body: Record<string, unknown>) =>
    server.call('POST', `/app/${app.id}/sign`, { json: { sub: 'alice', aud: 'web', ip: '192.0.2.1', useragent: 'UA/1', ...body }, headers: { authorization: app.appKey } });

  describe('S2-03 a JWTPlus refresh token is revocable from the moment it is issued, nbf or not', () => {
    const endpoints = [
      ['JWTPlus logout', (app: any, token: string) => server.call('POST', `/app/${app.id}/logout`, { json: { token }, headers: { authorization: app.appKey } })],
      ['/v1/revoke', (_app: any, token: string) => server.call('POST', '/v1/revoke', { json: { token } })],
      ['/oauth2/revoke', (app: any, token: string) => server.call('POST', '/oauth2/revoke', { form: { token, client_id: app.id, client_secret: app.appKey } })],
    ] as const;
    for (const [name, revoke] of endpoints) {
      it(`S2-03 ${name} in the refresh token's first 60 s revokes its session`, async () => {
        const app = await createApp(server, { name: `s203-${name.replace(/[^a-z0-9]/gi, '').toLowerCase()}`, profile: 'jwtplus' });
        const pair = (await jwtplusSign(app, {})).body;
        expect(decodeJwtPart(pair.refresh_token, 1).nbf).toBeGreaterThan(Math.floor(clock.now() / 1000) + 30);
        expect((await revoke(app, pair.refresh_token)).status).toBe(200);
        clock.advance(61);
        const renewed = await server.call('POST', `/app/${app.id}/renew`, {
          json: { refresh_token: pair.refresh_token, ip: '192.0.2.1', useragent: 'UA/1' }, headers: { authorization: app.appKey },
        });
        expect(renewed.status).toBe(404);
        const sessions = await sessionsOf(app, 'alice');
        expect(sessions).toHaveLength(1);
        expect(sessions[0].revokedAt).not.toBeNull();
      });
    }
  });

  describe('S2-04 a confidential app\'s refresh token redeems only with its app key, on every endpoint', () => {
    it('S2-04 public is the default for every profile but jwtplus; keyless dialects cannot be confidential', async () => {
      expect((await server.call('GET', `/admin/apps/${(await createApp(server, { name: 's204-native' })).id}`, { headers: admin })).body.public).toBe(true);
      expect((await server.call('GET', `/admin/apps/${(await createApp(server, { name: 's204-jp', profile: 'jwtplus' })).id}`, { headers: admin })).body.public).toBe(false);
      for (const profile of ['verifik', 'flolive', 'fib', 'abitmedia']) {
        const res = await server.call('POST', '/admin/apps', { json: { name: `s204-${profile}`, profile, public: false }, headers: admin });
        expect(res.status).toBe(400);
        expect(res.body.detail).toMatch(/cannot be confidential/);
      }
    });

    it('S2-04 /v1/refresh without the key, or with another app\'s key, is refused and consumes nothing', async () => {
      const app = await createApp(server, { name: 's204-conf', public: false, policy: { reuseGrace: 0 } });
      const other = await createApp(server, { name: 's204-other' });
      const pair = await issue(server, app);
      const bare = await refresh(pair.refreshToken);
      expect(bare.status).toBe(401);
      expect(bare.body.code).toBe('invalid_app_key');
      // Another app's key makes the token a stranger there (left untouched, as at /oauth2/token).
      expect((await refresh(pair.refreshToken, { authorization: `Bearer ${other.appKey}` })).body.code).toBe('invalid_refresh_token');
      expect((await refresh(pair.refreshToken, { authorization: 'Bearer ak_wrong' })).status).toBe(401);
      // Nothing was consumed: with grace 0, a consumed token would now be reuse.
      const keyed = await refresh(pair.refreshToken, { authorization: `Bearer ${app.appKey}` });
      expect(keyed.status).toBe(200);
      expect((await refresh(keyed.body.refreshToken, { authorization: `Bearer ${app.appKey}` })).status).toBe(200);
    });

    it('S2-04 a JWTPlus refresh token does not redeem keyless at /v1/refresh', async () => {
      const app = await createApp(server, { name: 's204-jp-refresh', profile: 'jwtplus' });
      const pair = (await jwtplusSign(app, {})).body;
      clock.advance(61);
      expect((await refresh(pair.refresh_token)).status).toBe(401);
      expect((await refresh(pair.refresh_token, { authorization: `Bearer ${app.appKey}` })).status).toBe(200);
    });

    it('S2-04 OAuth: a confidential client needs its secret; a public one may omit it; a presented secret is checked', async () => {
      const conf = await createApp(server, { name: 's204-oauth-conf', public: false });
      const pub = await createApp(server, { name: 's204-oauth-pub' });
      const a = await issue(server, conf);
      const b = await issue(server, pub);
      const token = (form: Record<string, string>) => server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', ...form } });
      expect((await token({ refresh_token: a.refreshToken, client_id: conf.id })).status).toBe(401);
      expect((await token({ refresh_token: b.refreshToken, client_id: pub.id, client_secret: 'ak_wrong' })).status).toBe(401);
      expect((await token({ refresh_token: b.refreshToken, client_id: pub.id })).status).toBe(200);
      expect((await token({ refresh_token: a.refreshToken, client_id: conf.id, client_secret: conf.appKey })).status).toBe(200);
    });
  });

  describe('S2-06 only a caller with the app key names the client\'s ip and user agent', () => {
    it('S2-06 body ip/userAgent at /v1/refresh without the key are ignored, and cannot pass useragent binding', async () => {
      const app = await createApp(server, { name: 's206-bind', policy: { binding: 'useragent' } });
      const pair = await issue(server, app, 'alice', { userAgent: 'VictimBrowser/1.0', ip: '198.51.100.7' });
      const thief = await refresh(pair.refreshToken, { 'user-agent': 'Thief/1.0' }, { userAgent: 'VictimBrowser/1.0', ip: '203.0.113.66' });
      expect(thief.status).toBe(400);
      expect(thief.body.detail).toBe('revoked');
      const ok = await refresh(pair.refreshToken, { 'user-agent': 'VictimBrowser/1.0' });
      expect(ok.status).toBe(200);
    });

    it('S2-06 body ip/userAgent without the key never reach the recorded last-seen values', async () => {
      const app = await createApp(server, { name: 's206-record', policy: { binding: 'record' } });
      const pair = await issue(server, app);
      expect((await refresh(pair.refreshToken, { 'user-agent': 'Real/1.0' }, { ip: '203.0.113.66', userAgent: 'Spoofed/1.0' })).status).toBe(200);
      const [session] = await sessionsOf(app, 'alice');
      expect(session.lastIp).toBe('127.0.0.1');
      expect(session.lastUserAgent).toBe('Real/1.0');
    });

    it('S2-06 with the key, values are honoured but validated: an ip must be an address, a user agent at most 512 characters', async () => {
      const app = await createApp(server, { name: 's206-keyed', policy: { binding: 'record' } });
      const pair = await issue(server, app);
      const key = { authorization: `Bearer ${app.appKey}` };
      expect((await refresh(pair.refreshToken, key, { ip: 'x'.repeat(14_000) })).status).toBe(400);
      expect((await refresh(pair.refreshToken, key, { ip: 'not-an-ip' })).status).toBe(400);
      expect((await refresh(pair.refreshToken, key, { userAgent: 'u'.repeat(513) })).status).toBe(400);
      const issued = (body: Record<string, unknown>) => server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'bob', ...body }, headers: key });
      expect((await issued({ ip: 'x'.repeat(14_000) })).status).toBe(400);
      expect((await issued({ userAgent: 'u'.repeat(513) })).status).toBe(400);
      expect((await refresh(pair.refreshToken, key, { ip: '2001:db8::1', userAgent: 'Relayed/2.0' })).status).toBe(200);
      const [session] = await sessionsOf(app, 'alice');
      expect(session).toMatchObject({ lastIp: '2001:db8::1', lastUserAgent: 'Relayed/2.0' });
    });

    it('S2-06 an unauthenticated login cannot set them; an overlong User-Agent header is cut to 512', async () => {
      const app = await createApp(server, { name: 's206-login' });
      expect((await server.call('PUT', `/admin/apps/${app.id}/subjects/carol`, { json: { password: 'correct horse' }, headers: admin })).status).toBe(200);
      const login = await server.call('POST', `/v1/apps/${app.name}/login`, {
        json: { username: 'carol', password: 'correct horse', ip: '203.0.113.66', userAgent: 'Spoofed/1.0' }, headers: { 'user-agent': 'L'.repeat(2000) },
      });
      expect(login.status).toBe(200);
      const [session] = await sessionsOf(app, 'carol');
      expect(session.ip).toBe('127.0.0.1');
      expect(session.userAgent).toBe('L'.repeat(512));
    });
  });

  describe('S2-09 Rotor never issues a token that it later refuses', () => {
    it('S2-09 claims that would make a token longer than verification accepts are refused at issuance, nothing stored', async () => {
      const app = await createApp(server, { name: 's209-verifik', profile: 'verifik' });
      const key = { authorization: `Bearer ${app.appKey}` };
      const big = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'big', claims: { blob: 'x'.repeat(7000) } }, headers: key });
      expect(big.status).toBe(400);
      expect(big.body.detail).toMatch(/characters/);
      expect(await sessionsOf(app, 'big')).toEqual([]);
      // Just under the limit: issued, and its first renewal (which verifies the access token) works.
      const fits = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'fits', claims: { blob: 'x'.repeat(5000) } }, headers: key });
      expect(fits.status).toBe(201);
      expect(fits.body.accessToken.length).toBeLessThan(8192);
      const renewed = await server.call('GET', '/v2/auth/session?origin=refresh&expiresIn=1', { headers: { authorization: `Bearer ${fits.body.accessToken}` } });
      expect(renewed.status).toBe(200);
    });
  });

  it('S2-09 a token issued at the limit stays usable after its app changes algorithm (ES256 → RS256: +256 characters)', async () => {
    const app = await createApp(server, { name: 's209-alg', policy: { reuseGrace: 0 } });
    const key = { authorization: `Bearer ${app.appKey}` };
    let pad = 6400;
    let issued = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'big', claims: { pad: 'x'.repeat(pad) } }, headers: key });
    while (issued.status === 400 && pad > 0) {
      pad -= 50;
      issued = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'big', claims: { pad: 'x'.repeat(pad) } }, headers: key });
    }
    expect(issued.status).toBe(201);
    expect((await server.call('PATCH', `/admin/apps/${app.id}`, { json: { policy: { alg: 'RS256' } }, headers: admin })).status).toBe(200);
    const renewed = await refresh(issued.body.refreshToken);
    expect(renewed.status).toBe(200);
    expect(renewed.body.accessToken.length).toBeLessThanOrEqual(8192);
    const active = await server.call('POST', '/v1/introspect', { json: { token: renewed.body.accessToken }, headers: key });
    expect(active.body.active).toBe(true);
  });

  it('S2-18 JSON routes take no form bodies: a cross-site form POST cannot drive /v1/refresh, /v1/revoke or a login', async () => {
    const app = await createApp(server, { name: 's218' });
    const pair = await issue(server, app);
    const form = (path: string, body: string) => server.call('POST', path, { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect((await form('/v1/refresh', `refreshToken=${pair.refreshToken}`)).status).toBe(415);
    expect((await form('/v1/revoke', `token=${pair.refreshToken}`)).status).toBe(415);
    expect((await form(`/v1/apps/${app.name}/login`, 'username=a&password=b')).status).toBe(415);
    expect((await refresh(pair.refreshToken)).status).toBe(200);
  });

  describe('S2-10 nested __proto__ never reaches a signed token', () => {
    for (const body of [
      '{"sub":"alice","aud":"web","ip":"192.0.2.1","useragent":"UA","meta":{"__proto__":{"admin":true}}}',
      '{"sub":"alice","aud":"web","ip":"192.0.2.1","useragent":"UA","meta":{"constructor":{"prototype":{"admin":true}}}}',
      '{"sub":"alice","aud":"web","ip":"192.0.2.1","useragent":"UA","list":[{"__proto__":{"admin":true}}]}',
    ]) {
      it(`S2-10 JWTPlus sign refuses ${body.slice(60, 110)}`, async () => {
        const app = await createApp(server, { name: `s210-${body.length}`, profile: 'jwtplus' });
        const res = await server.call('POST', `/app/${app.id}/sign`, { body, headers: { authorization: app.appKey, 'content-type': 'application/json' } });
        expect(res.status).toBe(400);
        expect(res.text).not.toMatch(/auth_token/);
      });
    }

    it('S2-10 control: the native API refuses the same nested keys in claims (it already did)', async () => {
      const app = await createApp(server, { name: 's210-native' });
      const res = await server.call('POST', `/v1/apps/${app.name}/sessions`, {
        body: '{"subject":"alice","claims":{"meta":{"__proto__":{"admin":true}}}}', headers: { authorization: `Bearer ${app.appKey}`, 'content-type': 'application/json' },
      });
      expect(res.status).toBe(400);
    });
  });

  describe('S2-14 OAuth errors say RFC 6749\'s words, not the internal reason', () => {
    it('S2-14 reuse, unknown and revoked tokens all read alike to the client', async () => {
      const app = await createApp(server, { name: 's214', policy: { reuseGrace: 0 } });
      const pair = await issue(server, app);
      const token = (refresh_token: string) => server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token, client_id: app.id } });
      expect((await token(pair.refreshToken)).status).toBe(200);
      const reused = await token(pair.refreshToken);
      const unknown = await token(`rt_${'A'.repeat(43)}`);
      for (const res of [reused, unknown]) {
        expect(res.status).toBe(400);
        expect(res.body.error).toBe('invalid_grant');
        expect(res.text).not.toMatch(/reused|unknown|malformed|not_yet_valid/);
      }
      expect(reused.body).toEqual(unknown.body);
      // The reason is kept where operators look.
      expect(server.logs.join('')).toMatch(/"event":"oauth_refused"[^\n]*"reason":"reused"/);
    });
  });

  describe('S2-15 a disabled subject\'s login does not confirm its password', () => {
    it('S2-15 right and wrong passwords of a disabled subject get the same 401', async () => {
      const app = await createApp(server, { name: 's215' });
      await server.call('PUT', `/admin/apps/${app.id}/subjects/dora`, { json: { password: 'right-password' }, headers: admin });
      await server.call('PUT', `/admin/apps/${app.id}/subjects/dora`, { json: { status: 'disabled' }, headers: admin });
      const login = (password: string) => server.call('POST', `/v1/apps/${app.name}/login`, { json: { username: 'dora', password } });
      const right = await login('right-password');
      const wrong = await login('wrong-password');
      expect(right.status).toBe(401);
      expect(right.body).toEqual(wrong.body);
    });
  });

  describe('S2-08 one app is one issuance budget however the path spells it', () => {
    let limited: TestServer;
    beforeAll(async () => { limited = await startTestServer({ env: { ROTOR_RATE_LIMITS: 'issuePerApp=3,adminPerIp=30' } }); });
    afterAll(async () => { await limited.close(); });

    it('S2-08 name, ULID and lower-case ULID share one per-app limit', async () => {
      const app = await createApp(limited, { name: 's208' });
      const issueAt = (ref: string) => limited.call('POST', `/v1/apps/${ref}/sessions`, { json: { subject: 'alice' }, headers: { authorization: `Bearer ${app.appKey}` } });
      expect((await issueAt(app.name)).status).toBe(201);
      expect((await issueAt(app.id)).status).toBe(201);
      expect((await issueAt(app.id.toLowerCase())).status).toBe(201);
      for (const ref of [app.name, app.id, app.id.toLowerCase()]) expect((await issueAt(ref)).status, ref).toBe(429);
      // An app that does not exist spends no budget and gets its 404.
      expect((await issueAt('no-such-app')).status).toBe(404);
    });

    it('S2-01 wrong admin-token guesses count against the admin limit too', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 40; i += 1) statuses.push((await limited.call('GET', '/admin/apps', { headers: { authorization: `Bearer wrong-${i}` } })).status);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(30);
      expect(statuses.at(-1)).toBe(429);
    });
  });
});
