import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, issue, type TestResponse, type TestServer, startTestServer } from './helpers/server.js';
import { TcpProxy } from './helpers/tcp_proxy.js';
import { createTestDatabase } from './store/pg_harness.js';

/**
 * SECURITY-CASES F-01/F-02: a real server whose PostgreSQL sits behind a TCP proxy the test cuts and
 * restores. While it is cut: /readyz 503, token calls 503 with Retry-After (fail closed), nothing half
 * written. Once restored: the service recovers by itself, without a restart.
 */
describe('PostgreSQL outage behind a TCP proxy', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TcpProxy;
  let server: TestServer;
  let direct: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    proxy = new TcpProxy('127.0.0.1', 5432);
    await proxy.start();
    const url = new URL(database.url);
    url.port = String(proxy.port);
    url.searchParams.set('statement_timeout_ms', '500');
    url.searchParams.set('connect_timeout_ms', '500');
    server = await startTestServer({ env: { ROTOR_DATABASE_URL: url.toString(), ROTOR_MASTER_KEY: randomBytes(32).toString('base64') } });
    direct = new pg.Client({ connectionString: database.url });
    await direct.connect();
  });

  afterAll(async () => {
    await direct?.end();
    await server?.close();
    await proxy?.close();
    await database?.drop();
  });

  const refresh = (refreshToken: string) => server.call('POST', '/v1/refresh', { json: { refreshToken } });

  const expectUnavailable = (res: TestResponse) => {
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(res.text).not.toMatch(/rt_|postgres:\/\/|127\.0\.0\.1/);
  };

  /** The service comes back by itself: readiness is polled (bounded), never a timed assertion. */
  async function awaitReady(): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt += 1) {
      if ((await server.call('GET', '/readyz')).status === 200) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the service did not recover');
  }

  /** The generation of a session's refresh chain, as committed (SPEC §2.9: one row per session). */
  const generationOf = async (sessionId: string) =>
    Number((await direct.query('SELECT generation FROM sessions WHERE id = $1', [sessionId])).rows[0]?.generation);

  for (const mode of ['reset', 'blackhole'] as const) {
    it(`${mode}: 503 with Retry-After everywhere a token is decided, nothing half written, then recovery`, async () => {
      const app = await createApp(server, { name: `outage-${mode}`, policy: { reuseGrace: 0 } });
      const pair = await issue(server, app);
      expect((await server.call('GET', '/readyz')).status).toBe(200);

      proxy.cut(mode);
      const ready = await server.call('GET', '/readyz');
      expect(ready.status).toBe(503);
      expectUnavailable(await refresh(pair.refreshToken));
      expectUnavailable(await server.call('POST', `/v1/apps/${app.name}/sessions`, {
        json: { subject: 'bob' }, headers: { authorization: `Bearer ${app.appKey}` },
      }));
      expectUnavailable(await server.call('POST', '/v1/revoke', { json: { token: pair.refreshToken } })); // never 200 [CVE-2020-15223]
      expect((await server.call('GET', '/healthz')).status).toBe(200); // the process itself is fine

      // Nothing half written: the presented token is still the live generation; bob has no session.
      expect(await generationOf(pair.sessionId)).toBe(1);
      const bob = await direct.query('SELECT count(*)::int AS n FROM sessions WHERE subject = $1', ['bob']);
      expect(bob.rows[0].n).toBe(0);

      proxy.restore();
      await awaitReady();
      // The very token that failed during the outage now rotates: no restart, no lost state.
      const renewed = await refresh(pair.refreshToken);
      expect(renewed.status).toBe(200);
      expect(await refresh(renewed.body.refreshToken)).toMatchObject({ status: 200 });
    });
  }

  it('S2-11 OAuth clients see 503 temporarily_unavailable, never invalid_client, while the store is cut', async () => {
    const app = await createApp(server, { name: 'outage-oauth', public: false });
    const pair = await issue(server, app);
    proxy.cut('reset');
    // By name (never cached) and by id once the one-second app cache has expired: both must reach the store.
    await new Promise((r) => setTimeout(r, 1100));
    for (const clientId of [app.name, app.id]) {
      const form = { client_id: clientId, client_secret: app.appKey };
      for (const [path, extra] of [['/oauth2/token', { grant_type: 'refresh_token', refresh_token: pair.refreshToken }], ['/oauth2/introspect', { token: pair.refreshToken }], ['/oauth2/revoke', { token: pair.refreshToken }]] as const) {
        const res = await server.call('POST', path, { form: { ...form, ...extra } });
        expectUnavailable(res);
        expect(res.body, `${path} as ${clientId}`).toMatchObject({ error: 'temporarily_unavailable' });
      }
    }
    proxy.restore();
    await awaitReady();
    expect((await server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: app.id, client_secret: app.appKey } })).status).toBe(200);
  });

  it('3 s of network latency under 50 concurrent refreshes: no double success, timeouts are 503, then recovery', async () => {
    const app = await createApp(server, { name: 'outage-latency', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    proxy.latencyMs = 3000; // beyond statement_timeout (500 ms) + the client's 2 s grace: only timeouts answer
    const results = await Promise.all(Array.from({ length: 50 }, () => refresh(pair.refreshToken)));
    expect(results.filter((r) => r.status !== 503 && r.status !== 200 && r.status !== 400)).toEqual([]);
    expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(1);
    expect(results.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    for (const r of results.filter((x) => x.status === 503)) expectUnavailable(r);

    proxy.restore();
    await awaitReady();
    const generation = await generationOf(pair.sessionId);
    expect(generation).toBeLessThanOrEqual(2);
    // A 200 was only ever given for a committed successor.
    expect(results.some((r) => r.status === 200) && generation !== 2).toBe(false);
    // Nothing committed: the token still works once the network is healthy again. A successor committed
    // (its answer perhaps lost to the latency): the token was consumed, and without grace it is now reuse.
    expect((await refresh(pair.refreshToken)).status).toBe(generation === 1 ? 200 : 400);
  });

  it('a cut in the middle of 30 concurrent refreshes: only 200 or 503, one successor, and the retry gets it', async () => {
    const app = await createApp(server, { name: 'outage-midflight' }); // native: 10 s grace
    const pair = await issue(server, app);
    // The cut comes as soon as the first answer is out: the rest are somewhere between request and commit.
    let cut = false;
    const inFlight = Array.from({ length: 30 }, () => refresh(pair.refreshToken).then((res) => {
      if (!cut) { cut = true; proxy.cut('reset'); }
      return res;
    }));
    const results = await Promise.all(inFlight);
    expect(results.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
    for (const r of results.filter((x) => x.status === 503)) expectUnavailable(r);
    const issued = new Set(results.filter((r) => r.status === 200).map((r) => r.body.refreshToken as string));
    expect(issued.size).toBeLessThanOrEqual(1);

    proxy.restore();
    await awaitReady();
    expect(await generationOf(pair.sessionId)).toBeLessThanOrEqual(2); // the first token and at most one successor
    // A client that saw a 503 retries and gets the one successor (the grace window covers a lost answer).
    const retry = await refresh(pair.refreshToken);
    expect(retry.status).toBe(200);
    // The retry's successor is the one every 200 above carried, if any did: one successor in all.
    expect(new Set([...issued, retry.body.refreshToken])).toEqual(new Set([retry.body.refreshToken]));
    expect(await generationOf(pair.sessionId)).toBe(2);
  });
});
