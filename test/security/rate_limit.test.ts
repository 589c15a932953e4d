import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/domain/clock.js';
import { admin, createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

const LIMITS = 'refreshFailuresPerIp=5,loginFailuresPerUser=3,loginPerIp=40,adminPerIp=60,refreshPerIp=100';

describe('rate limits (R-15, issue 6)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { ROTOR_RATE_LIMITS: LIMITS } }); });
  afterAll(async () => { await server.close(); });

  it('R-15: guessing refresh tokens from one ip gets 429 with Retry-After on every refresh API', async () => {
    const app = await createApp(server, { name: 'rl' });
    const pair = await issue(server, app);
    const guess = () => server.call('POST', '/v1/refresh', { json: { refreshToken: `rt_${Math.random().toString(36).slice(2).padEnd(43, 'x')}` } });
    for (let i = 0; i < 5; i += 1) expect((await guess()).status).toBe(400);
    const limited = await guess();
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.body.code).toBe('rate_limited');
    // Even a valid token is refused from that ip now, and nothing was consumed by the refusal.
    expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } })).status).toBe(429);
    const oauth = await server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: app.id, client_secret: app.appKey } });
    expect(oauth.status).toBe(429);
    for (const [method, path] of [['PUT', '/api/v2/auth/token'], ['PATCH', '/auth/api/v1/authentication-management/session'], ['POST', '/v1/refreshToken'], ['GET', '/v2/auth/session'], ['POST', '/v2/auth/renew-and-revoke']] as const) {
      const res = await server.call(method, path, { json: method === 'GET' || method === 'PATCH' ? undefined : {}, headers: { authorization: 'Bearer x' } });
      expect(res.status, path).toBe(429);
      expect(res.headers.get('retry-after'), path).not.toBeNull();
    }
    // Another client (behind no proxy, the peer address is what counts) is unaffected: a spoofed
    // X-Forwarded-For does not move the attacker to a fresh bucket.
    const spoofed = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken }, headers: { 'x-forwarded-for': '203.0.113.9' } });
    expect(spoofed.status).toBe(429);
    expect(server.logs.join('')).not.toContain(pair.refreshToken);
  });

  it('password guessing is slowed per (ip, user) without locking the user out for others', async () => {
    const app = await createApp(server, { name: 'rl-login' });
    await server.call('PUT', '/admin/apps/rl-login/subjects/victim', { json: { password: 'right' }, headers: admin });
    await server.call('PUT', '/admin/apps/rl-login/subjects/other', { json: { password: 'right' }, headers: admin });
    const login = (username: string, password: string) => server.call('POST', `/v1/apps/${app.name}/login`, { json: { username, password } });
    for (let i = 0; i < 3; i += 1) expect((await login('victim', 'wrong')).status).toBe(401);
    expect((await login('victim', 'wrong')).status).toBe(429);
    expect((await login('victim', 'right')).status).toBe(429);
    // Another user from the same ip still logs in.
    expect((await login('other', 'right')).status).toBe(200);
  });
});

// Buckets per forwarded client behind a trusted proxy (ROTOR_TRUST_PROXY): test/security/trust_proxy.test.ts.
describe('rate limits: the admin API and the configuration', () => {
  it('the admin API is limited per ip', async () => {
    const server = await startTestServer({ env: { ROTOR_RATE_LIMITS: 'adminPerIp=3' } });
    try {
      for (let i = 0; i < 3; i += 1) expect((await server.call('GET', '/admin/apps', { headers: admin })).status).toBe(200);
      expect((await server.call('GET', '/admin/apps', { headers: admin })).status).toBe(429);
    } finally {
      await server.close();
    }
  });

  it('what a foreign page can make a browser send is no failed guess: origin refusals and bare admin calls do not lock anyone out (outside review S5-04)', async () => {
    const server = await startTestServer({ env: { ROTOR_RATE_LIMITS: 'refreshFailuresPerIp=3,adminPerIp=4', ROTOR_CORS_ORIGINS: 'https://app.example' } });
    try {
      const app = await createApp(server, { name: 'rl-site' });
      const pair = await issue(server, app);
      // A page on another site: no-cors form posts (no preflight) and bare GETs of the admin API.
      for (let i = 0; i < 10; i += 1) {
        const refused = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken }, headers: { origin: 'https://evil.example' } });
        expect(refused.status).toBe(403);
        expect(refused.body.code).toBe('origin_not_allowed');
        expect((await server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: app.id }, headers: { origin: 'https://evil.example' } })).status).toBe(403);
        expect((await server.call('GET', '/admin/apps')).status).toBe(401);
      }
      const renewed = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken }, headers: { origin: 'https://app.example' } });
      expect(renewed.status, renewed.text).toBe(200);
      expect((await server.call('GET', '/admin/apps', { headers: admin })).status).toBe(200);
      // Guesses are still limited: wrong tokens, and admin calls with a wrong token (the app's creation and the
      // call above were admin calls 1 and 2 of 4).
      for (let i = 0; i < 3; i += 1) expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: 'rt_nope' } })).status).toBe(400);
      expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: renewed.body.refreshToken } })).status).toBe(429);
      for (let i = 0; i < 2; i += 1) expect((await server.call('GET', '/admin/apps', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await server.call('GET', '/admin/apps', { headers: admin })).status).toBe(429);
    } finally {
      await server.close();
    }
  });

  it('refuses a malformed ROTOR_RATE_LIMITS', async () => {
    await expect(startTestServer({ env: { ROTOR_RATE_LIMITS: 'bogus=1' } })).rejects.toThrow(/ROTOR_RATE_LIMITS/);
  });
});

describe('rate limits across instances', () => {
  it('counts are pooled through the shared store: two servers on one database share one budget', async () => {
    // A pinned clock keeps the test inside one one-minute window however long it takes.
    const clock = new FixedClock(Date.UTC(2026, 5, 1, 12, 0, 1));
    const first = await startTestServer({ clock, env: { ROTOR_RATE_LIMITS: 'refreshFailuresPerIp=4' } });
    // The first server's database, SQLite file or PostgreSQL schema (ROTOR_TEST_STORE), and master key.
    const shared = { ROTOR_DATABASE_URL: first.config.databaseUrl, ...(first.config.masterKeyBase64 ? { ROTOR_MASTER_KEY: first.config.masterKeyBase64 } : {}) };
    const second = await startTestServer({ clock, env: { ROTOR_RATE_LIMITS: 'refreshFailuresPerIp=4', ...shared } });
    try {
      const guess = (server: TestServer) => server.call('POST', '/v1/refresh', { json: { refreshToken: 'rt_nope' } });
      expect((await guess(first)).status).toBe(400);
      expect((await guess(first)).status).toBe(400);
      expect((await guess(second)).status).toBe(400);
      expect((await guess(second)).status).toBe(400);
      // Each instance pools its counts every second; after that both know the ip spent its budget.
      await new Promise((r) => setTimeout(r, 2500));
      expect((await guess(first)).status).toBe(429);
      expect((await guess(second)).status).toBe(429);
    } finally {
      await second.close(); // its own (empty) directory; the database is the first's, dropped with it
      await first.close();
    }
  });
});
