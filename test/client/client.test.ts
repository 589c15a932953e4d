import { createServer, type Server } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRotorClient, type RotorEvent, type TokenPair } from '../../packages/client/src/rotor-client.js';
import { startHoldingProxy } from '../helpers/browser.js';
import { admin, createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';
import { expiring, isActive, refreshOutcomes, rejection, requestsTo, sharedStorage } from './helpers.js';

/**
 * @rotor/client in Node (SPEC §9), against a real Rotor: memory storage (one context), and two clients
 * sharing one Storage-like object (two contexts without Web Locks: the lease lock and BroadcastChannel).
 */
type App = Awaited<ReturnType<typeof createApp>>;

describe('@rotor/client in Node', () => {
  let server: TestServer;
  let strict: App; // reuseGrace 0: a token presented twice would be reuse
  let graceful: App;

  beforeAll(async () => {
    server = await startTestServer();
    strict = await createApp(server, { name: 'strict', policy: { reuseGrace: 0 } });
    graceful = await createApp(server, { name: 'graceful' });
  });
  afterAll(async () => { await server.close(); });

  const client = (extra: Parameters<typeof createRotorClient>[0] extends infer O ? Partial<O> : never = {}) =>
    createRotorClient({ baseUrl: server.url, storage: 'memory', ...extra });
  const introspect = (app: App, token: string) => isActive(server, app, token);

  it('refuses bad options: no baseUrl, a pair that is not one, dpopJkt() without dpop (test/client/dpop.test.ts has DPoP)', async () => {
    expect(() => createRotorClient({ baseUrl: 'auth.example.com' })).toThrow(TypeError);
    await expect(client().setSession({} as TokenPair)).rejects.toThrow(TypeError);
    await expect(client().setSession({ accessToken: 'x', expiresIn: Number.NaN })).rejects.toThrow(TypeError);
    expect((await rejection(client().getAccessToken())).kind).toBe('no_session');
    await expect(client().dpopJkt()).rejects.toThrow(/needs a client created with dpop: true/);
  });

  it('a fresh token is returned as it is; an expiring one is refreshed once, however many callers ask at once', async () => {
    const rotor = client();
    const pair = await issue(server, strict);
    void rotor.setSession(pair); // as SPEC §9 writes it: not awaited, and the next call still finds it
    expect(await rotor.getAccessToken()).toBe(pair.accessToken);
    await rotor.setSession(expiring(pair));
    const before = await requestsTo(server, '/v1/refresh');
    const tokens = await Promise.all(Array.from({ length: 10 }, () => rotor.getAccessToken()));
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(pair.accessToken);
    expect(await requestsTo(server, '/v1/refresh')).toBe(before + 1);
    expect(await introspect(strict, tokens[0] as string)).toBe(true);
    expect((await rotor.getSession())?.sessionId).toBe(pair.sessionId);
  });

  it('two contexts sharing a storage without Web Locks: one refresh between them, both get the pair, events in both', async () => {
    const storage = sharedStorage();
    const key = `shared-${Date.now()}`;
    const a = client({ storage, storageKey: key });
    const b = client({ storage, storageKey: key });
    const eventsA: RotorEvent[] = [];
    const eventsB: RotorEvent[] = [];
    a.onChange((e) => eventsA.push(e));
    b.onChange((e) => eventsB.push(e));
    await a.setSession(expiring(await issue(server, strict)));
    const before = await requestsTo(server, '/v1/refresh');
    const [ta, tb] = await Promise.all([a.getAccessToken(), b.getAccessToken()]);
    expect(ta).toBe(tb);
    expect(await requestsTo(server, '/v1/refresh')).toBe(before + 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(eventsA.map((e) => e.type)).toEqual(['signed_in', 'refreshed']);
    expect(eventsB.map((e) => e.type)).toContain('refreshed');
    expect(storage.map.has(`${key}:lock`)).toBe(false);
    a.close();
    b.close();
  });

  it('terminal refusals end the session with their reason: reused, revoked, subject_disabled, expired, invalid', async () => {
    const cases: [string, (pair: TokenPair) => Promise<void>, string][] = [
      ['reused', async (pair) => {
        // Someone else (a thief) redeemed the token first; grace 0: the client's use is reuse.
        expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } })).status).toBe(200);
      }, 'reused'],
      ['revoked', async (pair) => {
        expect((await server.call('POST', '/v1/revoke', { json: { token: pair.accessToken } })).status).toBe(200);
      }, 'revoked'],
      ['subject_disabled', async () => {
        expect((await server.call('PUT', '/admin/apps/strict/subjects/carol', { json: { status: 'disabled' }, headers: admin })).status).toBe(200);
      }, 'subject_disabled'],
      ['invalid', async () => undefined, 'invalid'],
    ];
    for (const [name, spoil, reason] of cases) {
      const rotor = client();
      const events: RotorEvent[] = [];
      rotor.onChange((e) => events.push(e));
      const pair = await issue(server, strict, name === 'subject_disabled' ? 'carol' : 'alice');
      await rotor.setSession(expiring(name === 'invalid' ? { ...pair, refreshToken: `rt_${'A'.repeat(76)}` } : pair));
      await spoil(pair);
      const error = await rejection(rotor.getAccessToken());
      expect(error.kind, name).toBe('signed_out');
      expect(error.reason, name).toBe(reason);
      expect(events.at(-1), name).toEqual({ type: 'signed_out', reason });
      expect(await rotor.getSession()).toBeNull();
      // Signed out stays signed out, without another request.
      expect((await rejection(rotor.getAccessToken())).kind).toBe('signed_out');
    }
  });

  it('an expired refresh token ends the session as expired', async () => {
    const clocked = await startTestServer({ fixedClock: true });
    try {
      const app = await createApp(clocked, { name: 'short', policy: { refreshTtl: 60, accessTtl: 30 } });
      const rotor = createRotorClient({ baseUrl: clocked.url, storage: 'memory' });
      await rotor.setSession(expiring(await issue(clocked, app)));
      (clocked.clock as unknown as { advance(ms: number): void }).advance(61);
      const error = await rejection(rotor.getAccessToken());
      expect([error.kind, error.reason]).toEqual(['signed_out', 'expired']);
    } finally {
      await clocked.close();
    }
  });

  it('transient failures keep the session: an unreachable server is retried with backoff, then reported; later it works', async () => {
    const down = await new Promise<Server>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => resolve(s)); });
    const port = (down.address() as { port: number }).port;
    await new Promise<void>((resolve) => down.close(() => resolve()));
    const storage = sharedStorage();
    const pair = expiring(await issue(server, strict));
    const offline = createRotorClient({ baseUrl: `http://127.0.0.1:${port}`, storage, retries: 2 });
    await offline.setSession(pair);
    const started = Date.now();
    const error = await rejection(offline.getAccessToken());
    expect(error.kind).toBe('transient');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300); // two backoffs: ≥ 125 + 250 ms
    expect(await offline.getSession()).not.toBeNull();
    offline.close();
    // The same stored session, now with Rotor reachable: nothing was consumed.
    const online = createRotorClient({ baseUrl: server.url, storage });
    expect(await introspect(strict, await online.getAccessToken())).toBe(true);
    online.close();
  });

  it('F4-03 a 200 that is not a TokenPair (a captive portal, a block page, a wrong baseUrl) is transient: the pair is kept and renews later', async () => {
    const storage = sharedStorage();
    const pair = expiring(await issue(server, strict)); // reuseGrace 0: only the untouched token can renew
    await client({ storage }).setSession(pair);
    const kept = await client({ storage }).getSession();
    const answers = [
      '{"status":"ok"}', '{"accessToken":"x","expiresIn":"soon"}', '{"accessToken":"x","expiresIn":900}',
      '{"accessToken":"","expiresIn":900,"refreshToken":"r"}', '{"accessToken":"x","expiresIn":-1,"refreshToken":"r"}',
      '{"accessToken":"x","expiresIn":900,"refreshToken":"r","tokenType":5}', '[]', 'null', '<html>portal</html>',
    ];
    for (const answer of answers) {
      const portal: typeof fetch = async () => new Response(answer, { status: 200, headers: { 'content-type': answer.startsWith('<') ? 'text/html' : 'application/json' } });
      const captive = client({ storage, fetch: portal, retries: 0 });
      const events: RotorEvent[] = [];
      captive.onChange((e) => events.push(e));
      const error = await rejection(captive.getAccessToken());
      expect([error.kind, error.status], answer).toEqual(['transient', 200]);
      expect(await captive.getSession(), answer).toEqual(kept);
      expect(events.filter((e) => e.type === 'signed_out'), answer).toEqual([]);
      captive.close();
    }
    // The same stored pair against the real Rotor: its refresh token was never dropped nor consumed.
    const online = client({ storage });
    expect(await introspect(strict, await online.getAccessToken())).toBe(true);
    online.close();
  });

  it('a redirect at the baseUrl is not followed: the refresh token and the revoked token never leave for its target (outside review S5-05)', async () => {
    const received: string[] = [];
    const thief = createServer((req, res) => { req.on('data', (chunk) => received.push(String(chunk))); req.on('end', () => res.end('{}')); });
    await new Promise<void>((resolve) => thief.listen(0, '127.0.0.1', resolve));
    const thiefUrl = `http://127.0.0.1:${(thief.address() as { port: number }).port}`;
    const redirector = createServer((_req, res) => { res.writeHead(307, { location: `${thiefUrl}/steal` }); res.end(); });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    try {
      const pair = expiring(await issue(server, strict));
      const moved = client({ baseUrl: `http://127.0.0.1:${(redirector.address() as { port: number }).port}`, retries: 0 });
      await moved.setSession(pair);
      expect((await rejection(moved.getAccessToken())).kind).toBe('transient');
      await moved.signOut().catch(() => undefined);
      moved.close();
      expect(received.join('')).toBe('');
      // Nothing was consumed either: the session renews at Rotor itself.
      const direct = client();
      await direct.setSession(pair);
      expect(await introspect(strict, await direct.getAccessToken())).toBe(true);
      direct.close();
    } finally {
      await new Promise((resolve) => thief.close(resolve));
      await new Promise((resolve) => redirector.close(resolve));
    }
  });

  it('B-07 an answer that never comes: the call times out and the retry, inside the grace window, gets the same successor', async () => {
    const proxy = await startHoldingProxy(server.url);
    try {
      const rotor = createRotorClient({ baseUrl: proxy.url, storage: 'memory', requestTimeoutMs: 400 });
      const pair = await issue(server, graceful);
      await rotor.setSession(expiring(pair));
      const held = proxy.holdNext('/v1/refresh');
      const before = await refreshOutcomes(server);
      const token = rotor.getAccessToken();
      const lost = JSON.parse((await held).body) as TokenPair; // committed at Rotor, its answer never delivered
      expect(await introspect(graceful, await token)).toBe(true);
      expect((await refreshOutcomes(server)).retry).toBe((before.retry ?? 0) + 1);
      // The client holds exactly the successor the lost answer carried: one chain.
      const next = await server.call('POST', '/v1/refresh', { json: { refreshToken: lost.refreshToken } });
      expect(next.status).toBe(200);
    } finally {
      proxy.release();
      await proxy.close();
    }
  });

  it('429 with Retry-After is transient: the session is kept', async () => {
    const limited = await startTestServer({ env: { ROTOR_RATE_LIMITS: 'refreshPerIp=1' } });
    try {
      const app = await createApp(limited, { name: 'lim' });
      const first = await issue(limited, app);
      expect((await limited.call('POST', '/v1/refresh', { json: { refreshToken: first.refreshToken } })).status).toBe(200);
      // No retry: the limit counts in fixed windows, and a retry after a Retry-After of 1 s (the window's
      // last second) lands in the next window and succeeds — a test that then fails once a minute's worth.
      const rotor = createRotorClient({ baseUrl: limited.url, storage: 'memory', retries: 0 });
      await rotor.setSession(expiring(await issue(limited, app)));
      const error = await rejection(rotor.getAccessToken());
      expect([error.kind, error.status]).toEqual(['transient', 429]);
      expect(error.details.retryAfter).toBeGreaterThanOrEqual(1);
      expect(await rotor.getSession()).not.toBeNull();
    } finally {
      await limited.close();
    }
  });

  describe('fetch()', () => {
    let api: Server;
    let apiUrl = '';
    const refusedTokens = new Set<string>();
    let seen: string[] = [];

    beforeAll(async () => {
      // A resource server: verifies the access token offline against the app's JWKS; refuses listed tokens.
      const jwks = createRemoteJWKSet(new URL(`${server.url}/v1/apps/graceful/jwks.json`));
      api = createServer(async (req, res) => {
        const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
        seen.push(token);
        let body = '';
        for await (const chunk of req) body += chunk;
        try {
          await jwtVerify(token, jwks);
          if (refusedTokens.has(token)) throw new Error('refused');
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, body }));
        } catch {
          res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
        }
      });
      await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
      apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
    });
    afterAll(async () => { await new Promise((resolve) => api.close(resolve)); });

    it('adds the token; on a 401 refreshes once and retries once, body included', async () => {
      const rotor = client();
      const pair = await issue(server, graceful);
      await rotor.setSession(pair);
      seen = [];
      const ok = await rotor.fetch(`${apiUrl}/orders`, { method: 'POST', body: 'a=1', headers: { 'x-keep': 'me' } });
      expect(ok.status).toBe(200);
      expect(seen).toEqual([pair.accessToken]);
      refusedTokens.add(pair.accessToken);
      seen = [];
      const retried = await rotor.fetch(`${apiUrl}/orders`, { method: 'POST', body: 'a=2' });
      expect(retried.status).toBe(200);
      expect(await retried.json()).toEqual({ ok: true, body: 'a=2' });
      expect(seen.length).toBe(2);
      expect(seen[1]).not.toBe(pair.accessToken);
    });

    it('a second 401 is returned as it is: one refresh, one retry, no loop', async () => {
      const rotor = client();
      await rotor.setSession(await issue(server, graceful));
      const always = createServer((_req, res) => res.writeHead(401).end());
      await new Promise<void>((resolve) => always.listen(0, '127.0.0.1', resolve));
      let hits = 0;
      always.on('request', () => { hits += 1; });
      const before = await requestsTo(server, '/v1/refresh');
      const denied = await rotor.fetch(`http://127.0.0.1:${(always.address() as { port: number }).port}/`);
      expect(denied.status).toBe(401);
      expect(hits).toBe(2);
      expect(await requestsTo(server, '/v1/refresh')).toBe(before + 1);
      await new Promise((resolve) => always.close(resolve));
    });
  });

  it('signOut revokes the session at Rotor and signs every context out', async () => {
    const storage = sharedStorage();
    const a = client({ storage, storageKey: 'so' });
    const b = client({ storage, storageKey: 'so' });
    const eventsB: RotorEvent[] = [];
    b.onChange((e) => eventsB.push(e));
    const pair = await issue(server, graceful);
    await a.setSession(pair);
    await a.signOut();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(eventsB.at(-1)).toEqual({ type: 'signed_out', reason: 'signed_out' });
    expect((await rejection(b.getAccessToken())).reason).toBe('signed_out');
    const refused = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(refused.body.detail).toBe('revoked');
    a.close();
    b.close();
  });

  it('a retry inside the grace window recovers the same successor: what a tab does after the lock holder died', async () => {
    const pair = await issue(server, graceful);
    // The holder's request went through, its answer was lost with the tab.
    const lost = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    const before = await refreshOutcomes(server);
    const rotor = client();
    await rotor.setSession(expiring(pair));
    const token = await rotor.getAccessToken();
    expect(await introspect(graceful, token)).toBe(true);
    expect((await refreshOutcomes(server)).retry).toBe((before.retry ?? 0) + 1);
    const next = await server.call('POST', '/v1/refresh', { json: { refreshToken: lost.body.refreshToken } });
    expect(next.status).toBe(200); // one chain: the successor the client holds is the one the lost answer carried
  });
});
