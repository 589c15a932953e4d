import type { BrowserContext, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { browserAvailable, type TabResult, useClientPage } from '../helpers/browser.js';
import { createApp, decodeJwtPart, issue } from '../helpers/server.js';
import { isActive, requestsTo, startIssuerServer, thiefProof } from '../client/helpers.js';

/**
 * @rotor/client with `dpop: true` in a real Chromium (SPEC §9, RFC 9449): the page (another origin than
 * Rotor's) keeps one non-extractable WebCrypto key in IndexedDB and proves every refresh with it, so a
 * refresh token taken out of the page's storage — what XSS can take — is useless anywhere else.
 */
declare const window: Window & {
  ready?: boolean; rotor: { setSession(p: unknown): Promise<void>; dpopJkt(): Promise<string> };
  makeClient(options?: Record<string, unknown>): boolean; tokenOrError(): Promise<TabResult>; events: { type: string }[];
};

const available = browserAvailable();

describe.skipIf(!available)('@rotor/client dpop: true in Chromium', () => {
  // ROTOR_ISSUER = its URL: proofs name it.
  const rig = useClientPage((pageUrl) => startIssuerServer({ ROTOR_CORS_ORIGINS: pageUrl }));
  const DPOP = { dpop: true };
  const open = (p: Page) => rig.open(p, DPOP);
  const tabs = (context: BrowserContext, n: number) => rig.tabs(context, n, DPOP);
  /** Makes this origin's stored pair look expired (the page's clock, not Rotor's). */
  const expire = (p: Page) => p.evaluate(() => {
    const state = JSON.parse(localStorage.getItem('rotor') as string);
    localStorage.setItem('rotor', JSON.stringify({ ...state, receivedAt: 0, accessExpiresAt: 0 }));
  });
  const introspect = (app: { appKey: string }, token: string) => isActive(rig.server, app, token);

  it('a refresh token stolen from the page\'s storage is refused elsewhere (invalid_dpop_proof) while the page keeps refreshing; the key cannot be exported', async () => {
    const { server } = rig;
    const app = await createApp(server, { name: 'xss', policy: { reuseGrace: 0 } });
    await rig.inContext(async (context) => {
      const [tab] = await tabs(context, 1);
      const pair = await issue(server, app); // unbound: the page's first refresh binds it
      await tab!.evaluate((p) => window.rotor.setSession({ ...p, expiresIn: 0 }), pair);
      const first = await tab!.evaluate(() => window.tokenOrError());
      expect(first.error).toBeUndefined();
      const jkt = await tab!.evaluate(() => window.rotor.dpopJkt());
      expect(decodeJwtPart(first.token as string, 1).cnf).toEqual({ jkt });

      // What an injected script can take: everything in localStorage. Presented from Node, it is refused.
      const loot = await tab!.evaluate(() => JSON.parse(localStorage.getItem('rotor') as string));
      expect(loot.tokenType).toBe('DPoP');
      for (const dpop of [undefined, thiefProof(`${server.url}/v1/refresh`)]) {
        const stolen = await server.call('POST', '/v1/refresh', { json: { refreshToken: loot.refreshToken }, headers: dpop ? { dpop } : {} });
        expect([stolen.status, stolen.body.code], dpop ? 'with the thief\'s own proof' : 'without a proof').toEqual([401, 'invalid_dpop_proof']);
      }
      // The page refreshes on (reuseGrace 0: the stolen attempts consumed nothing), twice.
      for (let i = 0; i < 2; i += 1) {
        await expire(tab!);
        const next = await tab!.evaluate(() => window.tokenOrError());
        expect(next.error).toBeUndefined();
        expect(decodeJwtPart(next.token as string, 1).cnf).toEqual({ jkt });
        expect(await introspect(app, next.token as string)).toBe(true);
      }
      expect((await tab!.evaluate(() => window.events)).some((e) => e.type === 'signed_out')).toBe(false);

      // And the key itself cannot be taken: it is non-extractable, for the page's own script too.
      const key = await tab!.evaluate(async () => {
        const db = await new Promise<IDBDatabase>((resolve, reject) => {
          const r = indexedDB.open('rotor-dpop');
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(r.error);
        });
        const record = await new Promise<{ privateKey: CryptoKey }>((resolve) => {
          const g = db.transaction('keys').objectStore('keys').get('rotor');
          g.onsuccess = () => resolve(g.result);
        });
        db.close();
        const refused: string[] = [];
        for (const format of ['jwk', 'pkcs8'] as const) {
          try {
            await crypto.subtle.exportKey(format, record.privateKey);
          } catch (e) {
            refused.push(`${format}: ${(e as Error).name}`);
          }
        }
        return { type: record.privateKey.type, extractable: record.privateKey.extractable, algorithm: (record.privateKey.algorithm as EcKeyAlgorithm).namedCurve, refused };
      });
      expect(key).toEqual({ type: 'private', extractable: false, algorithm: 'P-256', refused: ['jwk: InvalidAccessError', 'pkcs8: InvalidAccessError'] });
    });
  }, 60_000);

  it('one key per origin: two fresh tabs agree on it, it survives a reload; dpopJkt at issuance, and both tabs expiring at once make one proved refresh', async () => {
    const { server } = rig;
    const app = await createApp(server, { name: 'tabs', policy: { reuseGrace: 0 } });
    await rig.inContext(async (context) => {
      // Both tabs made their client (and so looked for the key) at the same moment, in a fresh profile.
      const [one, two] = await tabs(context, 2);
      const [j1, j2] = await Promise.all([one!.evaluate(() => window.rotor.dpopJkt()), two!.evaluate(() => window.rotor.dpopJkt())]);
      expect(j1).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(j2).toBe(j1);

      // The backend flow: the page sends dpopJkt with its login, the backend issues a session bound to it.
      const pair = await issue(server, app, 'alice', { dpopJkt: j1 });
      expect(pair.tokenType).toBe('DPoP');
      await one!.evaluate((p) => window.rotor.setSession({ ...p, expiresIn: 0 }), pair);
      await two!.waitForFunction(() => window.events.some((e) => e.type === 'signed_in'));
      const before = await requestsTo(server, '/v1/refresh');
      const results = await Promise.all([one!, two!].map((p) => p.evaluate(() => window.tokenOrError())));
      expect(results.filter((r) => r.error)).toEqual([]);
      expect((await requestsTo(server, '/v1/refresh')) - before).toBe(1); // whichever held the lock proved; the other took its pair
      expect(results[0]!.token).toBe(results[1]!.token);
      expect(decodeJwtPart(results[0]!.token as string, 1).cnf).toEqual({ jkt: j1 });

      await one!.reload();
      await open(one!);
      expect(await one!.evaluate(() => window.rotor.dpopJkt())).toBe(j1);
      await expire(one!);
      const afterReload = await one!.evaluate(() => window.tokenOrError());
      expect(afterReload.error).toBeUndefined();
      expect(await introspect(app, afterReload.token as string)).toBe(true);
    });
  }, 60_000);
});
