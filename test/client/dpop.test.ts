import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { calculateJwkThumbprint, createRemoteJWKSet, EmbeddedJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createRotorClient } from '../../packages/client/src/rotor-client.js';
import { createApp, decodeJwtPart, issue, type TestServer } from '../helpers/server.js';
import { expireStored, expiring, rejection, requestsTo, sharedStorage, startIssuerServer, thiefProof } from './helpers.js';

/**
 * @rotor/client with `dpop: true` (SPEC §9, RFC 9449) in Node, against a real Rotor whose issuer is its
 * own URL: the key is WebCrypto's (in memory here: Node has no IndexedDB), every refresh is proved,
 * the first proof binds the session, nonces are answered, and fetch() proves resource requests.
 */
type App = Awaited<ReturnType<typeof createApp>>;

describe('@rotor/client with dpop: true (Node)', () => {
  let server: TestServer;
  let strict: App;

  beforeAll(async () => {
    server = await startIssuerServer();
    strict = await createApp(server, { name: 'dpop-strict', policy: { reuseGrace: 0 } });
  });
  afterAll(async () => { await server.close(); });

  /** The session's binding as Rotor keeps it (RFC 7662 introspection of the refresh token: cnf.jkt). */
  const boundTo = async (app: App, token: string) => (await server.call('POST', '/oauth2/introspect', {
    form: { token, client_id: app.id, client_secret: app.appKey },
  })).body.cnf?.jkt as string | undefined;

  it('refuses dpop: true where WebCrypto is missing, and dpopJkt() without dpop', async () => {
    vi.stubGlobal('crypto', undefined);
    try {
      expect(() => createRotorClient({ baseUrl: server.url, dpop: true })).toThrow(/dpop: true needs WebCrypto/);
    } finally {
      vi.unstubAllGlobals();
    }
    expect((await rejection(createRotorClient({ baseUrl: server.url }).dpopJkt())).kind).toBe('refused');
  });

  it('the first refresh binds the session: DPoP token, cnf.jkt = dpopJkt() = Rotor\'s binding; the stored token without the key is refused', async () => {
    const storage = sharedStorage();
    const rotor = createRotorClient({ baseUrl: server.url, storage, storageKey: 'dpop-bind', dpop: true });
    const jkt = await rotor.dpopJkt();
    expect(jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const pair = await issue(server, strict);
    expect(pair.tokenType).toBe('Bearer'); // not bound yet
    await rotor.setSession(expiring(pair));
    const before = await requestsTo(server, '/v1/refresh');
    const token = await rotor.getAccessToken();
    expect(await requestsTo(server, '/v1/refresh')).toBe(before + 1);
    expect(decodeJwtPart(token, 0).typ).toBe('at+jwt');
    expect(decodeJwtPart(token, 1).cnf).toEqual({ jkt });
    const stored = JSON.parse(storage.getItem('dpop-bind') as string);
    expect(stored.tokenType).toBe('DPoP');
    expect(await boundTo(strict, stored.refreshToken)).toBe(jkt);
    // The refresh token, copied out of storage, is useless without the key: nothing consumed either way.
    for (const dpop of [undefined, thiefProof(`${server.url}/v1/refresh`)]) {
      const stolen = await server.call('POST', '/v1/refresh', { json: { refreshToken: stored.refreshToken }, headers: dpop ? { dpop } : {} });
      expect([stolen.status, stolen.body.code]).toEqual([401, 'invalid_dpop_proof']);
    }
    // The client, with the key, keeps refreshing the same bound session (reuseGrace 0: the token was not consumed).
    expireStored(storage, 'dpop-bind');
    const next = await rotor.getAccessToken();
    expect(next).not.toBe(token);
    expect(decodeJwtPart(next, 1).cnf).toEqual({ jkt });
    expect(decodeJwtPart(next, 1).sid).toBe(pair.sessionId);
    rotor.close();
  });

  it('dpopJkt() at issuance binds from the start; another key\'s client is signed out (invalid), a client without dpop is refused', async () => {
    const rotor = createRotorClient({ baseUrl: server.url, storage: 'memory', storageKey: 'dpop-issued', dpop: true });
    const jkt = await rotor.dpopJkt();
    const pair = await issue(server, strict, 'alice', { dpopJkt: jkt });
    expect(pair.tokenType).toBe('DPoP');
    await rotor.setSession(expiring(pair));
    expect(decodeJwtPart(await rotor.getAccessToken(), 1).cnf).toEqual({ jkt });

    // The same kind of pair in a context with another key (another storageKey): it can never refresh it.
    const elsewhere = createRotorClient({ baseUrl: server.url, storage: 'memory', storageKey: 'dpop-other', dpop: true });
    expect(await elsewhere.dpopJkt()).not.toBe(jkt);
    await elsewhere.setSession(expiring(await issue(server, strict, 'alice', { dpopJkt: jkt })));
    const foreign = await rejection(elsewhere.getAccessToken());
    expect([foreign.kind, foreign.reason, foreign.details.code]).toEqual(['signed_out', 'invalid', 'invalid_dpop_proof']);
    expect(await elsewhere.getSession()).toBeNull();

    // A client without dpop cannot prove: refused (a configuration error), the session kept.
    const plain = createRotorClient({ baseUrl: server.url, storage: 'memory' });
    await plain.setSession(expiring(await issue(server, strict, 'alice', { dpopJkt: jkt })));
    const refused = await rejection(plain.getAccessToken());
    expect([refused.kind, refused.details.code]).toEqual(['refused', 'invalid_dpop_proof']);
    expect(refused.message).toMatch(/dpop: true/);
    expect(await plain.getSession()).not.toBeNull();
  });

  it('why dpopJkt at issuance: a token stolen before the first refresh and bound to the thief\'s key is reuse when the user\'s copy comes back: both are signed out', async () => {
    const pair = await issue(server, strict); // unbound
    const thief = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken }, headers: { dpop: thiefProof(`${server.url}/v1/refresh`) } });
    expect(thief.body.tokenType).toBe('DPoP');
    const rotor = createRotorClient({ baseUrl: server.url, storage: 'memory', storageKey: 'dpop-late', dpop: true });
    await rotor.setSession(expiring(pair));
    const error = await rejection(rotor.getAccessToken());
    // Rotor judges the token before the proof: the consumed token is reuse, and the session (the thief's too) dies.
    expect([error.kind, error.reason]).toEqual(['signed_out', 'reused']);
    const after = await server.call('POST', '/v1/refresh', { json: { refreshToken: thief.body.refreshToken }, headers: { dpop: thiefProof(`${server.url}/v1/refresh`) } });
    expect(after.body.detail).toBe('revoked');
  });

  it('server nonces (dpopNonce: true): use_dpop_nonce is answered once; the next refresh, in any context, proves with the nonce Rotor sent ahead', async () => {
    const app = await createApp(server, { name: 'dpop-nonce', policy: { dpopNonce: true, reuseGrace: 0 } });
    const storage = sharedStorage();
    const key = 'dpop-nonce';
    const a = createRotorClient({ baseUrl: server.url, storage, storageKey: key, dpop: true });
    await a.setSession(expiring(await issue(server, app)));
    let before = await requestsTo(server, '/v1/refresh');
    const first = await a.getAccessToken();
    const rounds = (await requestsTo(server, '/v1/refresh')) - before;
    expect(rounds).toBe(2); // 401 use_dpop_nonce, then the proof with that nonce
    const stored = JSON.parse(storage.getItem(key) as string);
    expect(stored.dpopNonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expireStored(storage, key);
    before = await requestsTo(server, '/v1/refresh');
    const second = await a.getAccessToken();
    expect((await requestsTo(server, '/v1/refresh')) - before).toBe(1);
    // Another context sharing the storage (and, in this process, the key) takes the nonce from the stored pair.
    const b = createRotorClient({ baseUrl: server.url, storage, storageKey: key, dpop: true });
    expireStored(storage, key);
    before = await requestsTo(server, '/v1/refresh');
    const third = await b.getAccessToken();
    expect((await requestsTo(server, '/v1/refresh')) - before).toBe(1);
    expect(new Set([first, second, third]).size).toBe(3);
    console.log(`[measured] dpopNonce app: first refresh ${rounds} requests, later refreshes 1 (the nonce sent ahead), in either context`);
    a.close();
    b.close();
  });

  describe('fetch() with a DPoP token', () => {
    let api: Server;
    let apiUrl = '';
    let app: App;
    const refusedTokens = new Set<string>();
    let hits: { scheme: string; nonce: unknown; status: number }[] = [];
    const NONCE = 'resource-nonce-1';

    beforeAll(async () => {
      app = await createApp(server, { name: 'dpop-fetch' });
      const meta = (await server.call('GET', `/.well-known/oauth-authorization-server/apps/${app.id}`)).body;
      const jwks = createRemoteJWKSet(new URL(meta.jwks_uri.replace(/^http:\/\/[^/]+/, server.url)));
      // A resource server doing docs/api.md's check (RFC 9449 §7), and asking for its own nonce (§9).
      api = createServer(async (req, res) => {
        const [scheme, token = ''] = String(req.headers.authorization ?? '').split(' ');
        const url = `${apiUrl}${(req.url ?? '/').split('?')[0]}`;
        const answer = (status: number, headers: Record<string, string> = {}) => {
          hits.push({ scheme: scheme ?? '', nonce: undefined, status });
          res.writeHead(status, headers).end(status === 200 ? '{"ok":true}' : '');
        };
        try {
          if (scheme !== 'DPoP') return answer(401, { 'www-authenticate': 'DPoP error="invalid_token"' });
          const { payload } = await jwtVerify(token, jwks, { issuer: meta.issuer, audience: app.id, typ: 'at+jwt' });
          const proof = await jwtVerify(String(req.headers.dpop), EmbeddedJWK, { typ: 'dpop+jwt', maxTokenAge: '5m', algorithms: ['ES256'] });
          if (await calculateJwkThumbprint(proof.protectedHeader.jwk!) !== (payload.cnf as { jkt?: string } | undefined)?.jkt) throw new Error('another key');
          if (proof.payload.ath !== createHash('sha256').update(token).digest('base64url')) throw new Error('another token');
          if (proof.payload.htm !== req.method || proof.payload.htu !== url) throw new Error('another request');
          if (proof.payload.nonce !== NONCE) return answer(401, { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': NONCE });
          if (refusedTokens.has(token)) throw new Error('refused');
          answer(200, { 'content-type': 'application/json' });
        } catch {
          answer(401, { 'www-authenticate': 'DPoP error="invalid_token"' });
        }
      });
      await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
      apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
    });
    afterAll(async () => { await new Promise((resolve) => api.close(resolve)); });

    it('sends Authorization: DPoP and a proof of the request (ath, htm, htu without query); answers the resource nonce; refreshes once on a 401', async () => {
      const rotor = createRotorClient({ baseUrl: server.url, storage: 'memory', storageKey: 'dpop-fetch', dpop: true });
      const pair = await issue(server, app, 'alice', { dpopJkt: await rotor.dpopJkt() });
      await rotor.setSession(pair);
      hits = [];
      const before = await requestsTo(server, '/v1/refresh');
      const ok = await rotor.fetch(`${apiUrl}/orders?page=2`, { method: 'POST', body: 'a=1' });
      expect(ok.status).toBe(200);
      expect(hits.map((h) => [h.scheme, h.status])).toEqual([['DPoP', 401], ['DPoP', 200]]); // the nonce challenge, then with it
      expect(await requestsTo(server, '/v1/refresh')).toBe(before); // a nonce challenge is no reason to refresh
      // The token refused: one refresh (proved), one retry with a proof for the new token; the nonce is remembered.
      refusedTokens.add(pair.accessToken);
      hits = [];
      const retried = await rotor.fetch(`${apiUrl}/orders`);
      expect(retried.status).toBe(200);
      expect(hits.map((h) => h.status)).toEqual([401, 200]);
      expect(await requestsTo(server, '/v1/refresh')).toBe(before + 1);
    });
  });
});
