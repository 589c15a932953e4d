import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FixedClock } from '../../src/domain/clock.js';
import { admin, createApp, issue, startTestServer, type TestResponse, type TestServer } from '../helpers/server.js';

/**
 * SECURITY-CASES §2 (R-01 … R-16), each row run against native /v1/refresh, OAuth /oauth2/token and every
 * dialect's refresh endpoint (JWTPlus renew, floLIVE PUT token, FIB PATCH session, Abitmedia refreshToken).
 * Verifik has no refresh token (SPEC §3): its renewal takes the access token, so no R-row applies to it.
 *
 * Rows that cannot apply here:
 * - R-05 (race across instances) is test/multi_instance.test.ts's (two processes on one store).
 * - R-08's "DB error during revoke → 503" is F-05, in test/outage.test.ts (a store that fails on demand).
 * - R-09 (restart, replay the old RT) is test/durability.test.ts and test/security/sigkill.test.ts (real processes).
 * - R-15 (429 after many random RTs) belongs to the rate-limit work; its storage/log parts are checked at the end here.
 * - R-07 (c) (the latest RT stolen while the victim idles) is undetectable by design; R-13's limits bound it.
 * - R-10 "revoke the app's API key": app keys authenticate the app's backend, not its users' sessions (SPEC §1);
 *   a revoked key fails client authentication (OAuth 401) and leaves sessions alone. "Disable the app": apps have no
 *   disabled state (SPEC §4.3); deleting one is tested. "Change the password": SPEC §1 does not end sessions on it;
 *   "log out everywhere" (DELETE …/subjects/{s}/sessions) is the way, and is tested.
 * - R-14 for FIB: the RT travels in Authorization, where HTTP itself trims surrounding whitespace and forbids NUL.
 */

type Kind = 'native' | 'oauth' | 'jwtplus' | 'flolive' | 'fib' | 'abitmedia';
type App = Awaited<ReturnType<typeof createApp>>;
interface Pair { accessToken: string; refreshToken: string; sessionId: string }
interface Result { ok: boolean; res: TestResponse; pair?: Pair }

const KINDS: Kind[] = ['native', 'oauth', 'jwtplus', 'flolive', 'fib', 'abitmedia'];
const FIB = '/auth/api/v1/authentication-management';
const ABIT_INVALID = '{"success":false,"status":400,"message":"Token de refresco inválido o expirado"}';
const profileOf = (kind: Kind) => (kind === 'native' || kind === 'oauth' ? 'native' : kind);

describe('refresh-token threats (R-01 … R-16) on every refresh endpoint', () => {
  let server: TestServer;
  let clock: FixedClock;
  const issued = new Set<string>();
  let appCount = 0;

  beforeAll(async () => {
    server = await startTestServer({ fixedClock: true });
    clock = server.clock as FixedClock;
  });
  afterAll(async () => { await server.close(); });

  /** An app for `kind` with the policy given (JWTPlus's 60 s not-before is set to 0 unless the row needs it). */
  async function appFor(kind: Kind, policy: Record<string, unknown> = {}): Promise<App> {
    appCount += 1;
    return createApp(server, { name: `rt-${kind}-${appCount}`, profile: profileOf(kind), policy: { refreshNotBefore: 0, ...policy } });
  }
  async function login(app: App, subject = 'alice', extra: Record<string, unknown> = {}): Promise<Pair> {
    const pair = (await issue(server, app, subject, extra)) as Pair;
    issued.add(pair.refreshToken);
    return pair;
  }
  const basic = (app: App) => `Basic ${Buffer.from(`${app.id}:${app.appKey}`).toString('base64')}`;

  /** Presents `pair.refreshToken` (with its access token where floLIVE wants it) to `kind`'s refresh endpoint, scoped to `scope`. */
  async function refresh(kind: Kind, app: App, pair: Pair, opts: { scope?: App; token?: string; form?: Record<string, string>; scopeParam?: string } = {}): Promise<Result> {
    const token = opts.token ?? pair.refreshToken;
    const scope = opts.scope;
    // The fixed clock moves 1 ms per request, as a real one would (a refresh token is not renewable in the
    // millisecond it was issued; see engine.renewFrom).
    clock.advance(0.001);
    let res: TestResponse;
    let next: Pair | undefined;
    switch (kind) {
      case 'native':
        // A confidential app's tokens (jwtplus by default) redeem here only with its app key (S2-04).
        res = await server.call('POST', '/v1/refresh', { json: { refreshToken: token }, headers: app.profile === 'jwtplus' ? { authorization: `Bearer ${(scope ?? app).appKey}` } : {} });
        if (res.status === 200) next = { accessToken: res.body.accessToken, refreshToken: res.body.refreshToken, sessionId: res.body.sessionId };
        break;
      case 'oauth': {
        const form: Record<string, string> = { grant_type: 'refresh_token', refresh_token: token };
        if (opts.scopeParam !== undefined) form.scope = opts.scopeParam;
        res = await server.call('POST', '/oauth2/token', { form, headers: { authorization: basic(scope ?? app) } });
        if (res.status === 200) next = { accessToken: res.body.access_token, refreshToken: res.body.refresh_token, sessionId: pair.sessionId };
        break;
      }
      case 'jwtplus': {
        const target = scope ?? app;
        res = await server.call('POST', `/app/${target.id}/renew`, { json: { refresh_token: token, ip: '10.0.0.9', useragent: 'threats' }, headers: { authorization: target.appKey } });
        if (res.status === 200) next = { accessToken: res.body.auth_token, refreshToken: res.body.refresh_token, sessionId: pair.sessionId };
        break;
      }
      case 'flolive':
        res = await server.call('PUT', scope ? `/flolive/${scope.name}/api/v2/auth/token` : '/api/v2/auth/token', { json: { token: pair.accessToken, refreshToken: token } });
        if (res.status === 200) next = { accessToken: res.body.content[0].token, refreshToken: res.body.content[0].refreshToken, sessionId: pair.sessionId };
        break;
      case 'fib':
        res = await server.call('PATCH', `${scope ? `/fib/${scope.name}` : ''}${FIB}/session`, { headers: { authorization: `Bearer ${token}` } });
        if (res.status === 200) next = { accessToken: res.body.data.accessToken, refreshToken: res.body.data.refreshToken, sessionId: pair.sessionId };
        break;
      case 'abitmedia':
        res = await server.call('POST', `${scope ? `/abitmedia/${scope.name}` : ''}/v1/refreshToken`, { json: { refreshToken: token } });
        if (res.status === 200) next = { accessToken: res.body.accessToken, refreshToken: res.body.refreshToken, sessionId: pair.sessionId };
        break;
    }
    expect(res.status, `${kind}: ${res.text.slice(0, 200)}`).toBeLessThan(500);
    expect(res.text).not.toMatch(/\bat .*\.(js|ts)\b|node_modules|SELECT/);
    if (next) issued.add(next.refreshToken);
    if (res.status !== 200) expect(res.text).not.toContain(token.trim() || '\u0000never');
    return { ok: res.status === 200, res, pair: next };
  }

  /** The API's own "invalid grant" (SPEC §4.1, §4.2, §4.4). `malformedOk`: a 400 invalid_request-style answer is fine too. */
  function expectRefused(kind: Kind, result: Result, malformedOk = false): void {
    const { res } = result;
    const where = `${kind}: ${res.status} ${res.text.slice(0, 200)}`;
    switch (kind) {
      case 'native':
        // A disabled subject has its own code in the native API (SPEC §4.1: subject_disabled, 403).
        if (res.body?.code === 'subject_disabled') {
          expect(res.status, where).toBe(403);
          break;
        }
        expect(res.status, where).toBe(400);
        expect(malformedOk ? ['invalid_refresh_token', 'invalid_request'] : ['invalid_refresh_token'], where).toContain(res.body.code);
        break;
      case 'oauth':
        expect(res.status, where).toBe(400);
        expect(malformedOk ? ['invalid_grant', 'invalid_request'] : ['invalid_grant'], where).toContain(res.body.error);
        break;
      case 'jwtplus':
        if (malformedOk && res.status === 400) expect(res.body.errors, where).toBeDefined();
        else expect(res.text, where).toBe('{"message":"invalid refresh token"}');
        break;
      case 'flolive':
        if (malformedOk && res.status === 400) expect(res.body.errorCode, where).toBe('REQ_1001');
        else expect(res.text, where).toBe('{"errorCode":"AUTH_1002","errorMessage":"Invalid token","content":"","pageable":""}');
        break;
      case 'fib':
        // 404 when the subject is gone (SPEC §4.4); 401 otherwise.
        expect([401, 404], where).toContain(res.status);
        expect(res.body.data, where).toBeNull();
        break;
      case 'abitmedia':
        expect(res.text, where).toBe(ABIT_INVALID);
        break;
    }
  }

  /** RFC 7662 through the native API: is this token (refresh or access) alive? */
  async function active(app: App, token: string): Promise<boolean> {
    const res = await server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${app.appKey}` } });
    expect(res.status).toBe(200);
    return res.body.active === true;
  }
  async function rotate(kind: Kind, app: App, pair: Pair): Promise<Pair> {
    const result = await refresh(kind, app, pair);
    expect(result.ok, `${kind} rotation: ${result.res.status} ${result.res.text.slice(0, 200)}`).toBe(true);
    return result.pair as Pair;
  }

  for (const kind of KINDS) {
    describe(kind, () => {
      it('R-01 rotation: a new, different RT, no-store; the new one works, the old one is refused', async () => {
        const app = await appFor(kind, { reuseGrace: 0 });
        const p0 = await login(app);
        const r = await refresh(kind, app, p0);
        expect(r.ok).toBe(true);
        expect(r.res.headers.get('cache-control')).toBe('no-store');
        const p1 = r.pair as Pair;
        expect(p1.refreshToken).not.toBe(p0.refreshToken);
        expect(p1.accessToken).not.toBe(p0.accessToken);
        const p2 = await rotate(kind, app, p1);
        // (The catalogue's "R1 still works after R0's reuse" yields to R-02: reuse revokes the whole session, SPEC §2.2.)
        expectRefused(kind, await refresh(kind, app, { ...p0, accessToken: p2.accessToken }));
      });

      it('R-02 reuse outside any grace window revokes the whole family, and is logged', async () => {
        for (const stale of [0, 1]) {
          const app = await appFor(kind, { reuseGrace: 0 });
          const chain = [await login(app)];
          chain.push(await rotate(kind, app, chain[0] as Pair));
          chain.push(await rotate(kind, app, chain[1] as Pair));
          const latest = chain[2] as Pair;
          const replayed = chain[stale] as Pair;
          expectRefused(kind, await refresh(kind, app, { ...replayed, accessToken: latest.accessToken }));
          expect(await active(app, latest.refreshToken)).toBe(false);
          expect(await active(app, latest.accessToken)).toBe(false);
          expectRefused(kind, await refresh(kind, app, latest));
        }
        const logged = await appFor(kind, { reuseGrace: 0 });
        const before = server.logs.filter((l) => l.includes('reuse_detected')).length;
        const p0 = await login(logged);
        await rotate(kind, logged, p0);
        await refresh(kind, logged, p0);
        expect(server.logs.filter((l) => l.includes('reuse_detected')).length).toBeGreaterThan(before);
        expect(server.logs.some((l) => l.includes(p0.refreshToken))).toBe(false);
      });

      it('R-03 grace window: the parent inside it returns the byte-identical child; after it, or once the child is used, or the grandparent, is reuse', async () => {
        const app = await appFor(kind, { reuseGrace: 10 });
        // Inside the window: the same successor, and a working access token.
        let p0 = await login(app);
        const p1 = await rotate(kind, app, p0);
        clock.advance(5);
        const retry = await refresh(kind, app, p0);
        expect(retry.ok).toBe(true);
        expect(retry.pair?.refreshToken).toBe(p1.refreshToken);
        expect(await active(app, retry.pair?.accessToken as string)).toBe(true);
        // Once the child was used, the parent is reuse.
        const p2 = await rotate(kind, app, { ...p1, accessToken: retry.pair?.accessToken as string });
        expectRefused(kind, await refresh(kind, app, { ...p0, accessToken: p2.accessToken }));
        expect(await active(app, p2.refreshToken)).toBe(false);

        // After the window: reuse.
        p0 = await login(app);
        const q1 = await rotate(kind, app, p0);
        clock.advance(11);
        expectRefused(kind, await refresh(kind, app, p0));
        expect(await active(app, q1.refreshToken)).toBe(false);

        // The grandparent inside the window: reuse.
        p0 = await login(app);
        const g1 = await rotate(kind, app, p0);
        const g2 = await rotate(kind, app, g1);
        expectRefused(kind, await refresh(kind, app, { ...p0, accessToken: g2.accessToken }));
        expect(await active(app, g2.refreshToken)).toBe(false);
      });

      it('R-04 50 concurrent requests with one RT: one winner (strict), or 50 byte-identical children (grace); never a fork', async () => {
        for (const reuseGrace of [0, 10]) {
          const app = await appFor(kind, { reuseGrace });
          const p0 = await login(app);
          const results = await Promise.all(Array.from({ length: 50 }, () => refresh(kind, app, p0)));
          const winners = results.filter((r) => r.ok);
          const children = new Set(winners.map((r) => r.pair?.refreshToken));
          expect(children.size).toBe(1);
          if (reuseGrace === 0) {
            expect(winners.length).toBe(1);
            for (const r of results.filter((x) => !x.ok)) expectRefused(kind, r);
            // The 49 replays were reuse: the family is revoked, nothing is left alive.
            expect(await active(app, winners[0]?.pair?.refreshToken as string)).toBe(false);
          } else {
            expect(winners.length).toBe(50);
            const child = winners[0]?.pair as Pair;
            expect(await active(app, child.refreshToken)).toBe(true);
            await rotate(kind, app, child);
          }
        }
      });

      it('R-06 reuse-triggered revocation racing the current child: once revoked, no descendant ever works', async () => {
        const app = await appFor(kind, { reuseGrace: 0 });
        for (let i = 0; i < 15; i += 1) {
          const p0 = await login(app, `racer-${i}`);
          const p1 = await rotate(kind, app, p0);
          const [reuse, child] = await Promise.all([refresh(kind, app, { ...p0, accessToken: p1.accessToken }), refresh(kind, app, p1)]);
          expectRefused(kind, reuse);
          if (child.ok) expectRefused(kind, await refresh(kind, app, child.pair as Pair));
          else expectRefused(kind, child);
          expect(await active(app, p1.accessToken)).toBe(false);
        }
      });

      it('R-07 theft orderings (a) attacker first, (b) victim first: both locked out, the family revoked', async () => {
        const app = await appFor(kind, { reuseGrace: 0 });
        for (const order of ['attacker-first', 'victim-first']) {
          const stolen = await login(app, order);
          const winner = await rotate(kind, app, stolen); // whoever refreshed first
          expectRefused(kind, await refresh(kind, app, { ...stolen, accessToken: winner.accessToken })); // the other replays R0
          expectRefused(kind, await refresh(kind, app, winner));
          expect(await active(app, winner.accessToken)).toBe(false);
        }
      });

      it('R-10 account lifecycle: disable, delete, re-enable, recreate, log out everywhere, delete the app', async () => {
        const app = await appFor(kind);
        const subjectPath = (s: string) => `/admin/apps/${app.name}/subjects/${s}`;
        // Disable, then re-enable: the family stays dead.
        let p = await login(app, 'dis');
        expect((await server.call('PUT', subjectPath('dis'), { json: { status: 'disabled' }, headers: admin })).status).toBe(200);
        expectRefused(kind, await refresh(kind, app, p));
        expect((await server.call('PUT', subjectPath('dis'), { json: { status: 'active' }, headers: admin })).status).toBe(200);
        expectRefused(kind, await refresh(kind, app, p));
        expect(await active(app, p.accessToken)).toBe(false);
        // Delete, then recreate with the same id: the family stays dead.
        p = await login(app, 'del');
        expect((await server.call('DELETE', subjectPath('del'), { headers: admin })).status).toBeLessThan(300);
        expectRefused(kind, await refresh(kind, app, p));
        expect((await server.call('PUT', subjectPath('del'), { json: { claims: {} }, headers: admin })).status).toBe(200);
        expectRefused(kind, await refresh(kind, app, p));
        // Log out everywhere.
        p = await login(app, 'all');
        const other = await login(app, 'all');
        const all = await server.call('DELETE', `/v1/apps/${app.name}/subjects/all/sessions`, { headers: { authorization: `Bearer ${app.appKey}` } });
        expect(all.body).toEqual({ revoked: 2 });
        expectRefused(kind, await refresh(kind, app, p));
        expectRefused(kind, await refresh(kind, app, other));
        // The app deleted: its tokens are nobody's (OAuth: the client itself is gone → 401 invalid_client; JWTPlus: 403).
        p = await login(app, 'gone');
        expect((await server.call('DELETE', `/admin/apps/${app.name}`, { headers: admin })).status).toBeLessThan(300);
        const after = await refresh(kind, app, p);
        if (kind === 'oauth') {
          expect(after.res.status).toBe(401);
          expect(after.res.body.error).toBe('invalid_client');
        } else if (kind === 'jwtplus') {
          expect(after.res.text).toBe('{"errors":"invalid app key or id"}');
        } else {
          expectRefused(kind, after);
        }
        expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: p.refreshToken } })).status).toBe(400);
      });

      it('R-11 another app\'s RT through this app\'s credentials or path: refused, nothing minted, left usable', async () => {
        if (kind === 'native') return; // /v1/refresh names no client: the token itself says whose it is (SPEC §4.1).
        const a = await appFor(kind);
        const b = await appFor(kind);
        const theirs = await login(b);
        expectRefused(kind, await refresh(kind, b, theirs, { scope: a }));
        expect(await active(b, theirs.refreshToken)).toBe(true);
        await rotate(kind, b, theirs);
      });

      it('R-13 absolute lifetime, idle timeout and RT expiry (FixedClock): refused at each limit; rotation never extends the absolute expiry', async () => {
        const maxAge = await appFor(kind, { sessionMaxAge: 3600, accessTtl: 300 });
        let p = await login(maxAge);
        for (let t = 0; t < 5; t += 1) {
          clock.advance(600);
          const r = await refresh(kind, maxAge, p);
          expect(r.ok).toBe(true);
          p = r.pair as Pair;
          if (kind === 'native') expect(r.res.body.refreshExpiresIn).toBeLessThanOrEqual(3600 - 600 * (t + 1));
        }
        clock.advance(600); // now exactly 3600 s after issue
        expectRefused(kind, await refresh(kind, maxAge, p));

        const idle = await appFor(kind, { sessionIdleTimeout: 600 });
        p = await login(idle);
        clock.advance(599);
        p = await rotate(kind, idle, p);
        clock.advance(600);
        expectRefused(kind, await refresh(kind, idle, p));

        const ttl = await appFor(kind, { refreshTtl: 300, accessTtl: 60 });
        p = await login(ttl);
        // (Stored expiries are whole seconds, so an RT lives refreshTtl minus up to 999 ms.)
        clock.advance(298);
        p = await rotate(kind, ttl, p);
        clock.advance(300);
        expectRefused(kind, await refresh(kind, ttl, p));
      });

      it('F-10/F-11 a clock behind the issuer\'s (another instance, a step back): a fresh RT still renews, reuse is still reuse', async () => {
        const app = await appFor(kind, { reuseGrace: 0 });
        const p0 = await login(app);
        clock.advance(-5);
        const p1 = await rotate(kind, app, p0);
        clock.advance(-20);
        const p2 = await rotate(kind, app, p1);
        expectRefused(kind, await refresh(kind, app, { ...p1, accessToken: p2.accessToken }));
        expect(await active(app, p2.refreshToken)).toBe(false);
        clock.advance(25);
        // A lost response retried on a clock 10 s behind the one that consumed the parent: the same child, not reuse.
        const graceApp = await appFor(kind, { reuseGrace: 10 });
        const g0 = await login(graceApp);
        const g1 = await rotate(kind, graceApp, g0);
        clock.advance(-10);
        const retry = await refresh(kind, graceApp, g0);
        expect(retry.ok, `${kind}: ${retry.res.text.slice(0, 200)}`).toBe(true);
        expect(retry.pair?.refreshToken).toBe(g1.refreshToken);
        clock.advance(10);
        await rotate(kind, graceApp, g1);
      });

      it('R-14 malformed refresh tokens: refused or invalid_request, never a 5xx or a mint; the real RT is untouched', async () => {
        const app = await appFor(kind);
        const p = await login(app);
        const valid = p.refreshToken;
        const flip = (t: string) => t.replace(/[a-zA-Z]/g, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()));
        const lastChanged = `${valid.slice(0, -1)}${valid.at(-1) === 'A' ? 'B' : 'A'}`;
        const inHeader = kind === 'fib';
        const cases: [string, string][] = [
          ['prefix', valid.slice(0, Math.floor(valid.length / 2))],
          ['minus one char', valid.slice(0, -1)],
          ['plus one char', `${valid}A`],
          ['last char changed', lastChanged],
          ['case-flipped', flip(valid)],
          ['"=" suffixed', `${valid}=`],
          ['10 KB', 'A'.repeat(10_240)],
          ['rt_ prefix alone', 'rt_'],
        ];
        if (!inHeader) cases.push(['whitespace-wrapped', ` ${valid} `], ['NUL inside', `${valid.slice(0, 10)}\u0000${valid.slice(10)}`], ['empty', '']);
        for (const [name, token] of cases) {
          const r = await refresh(kind, app, p, { token });
          expect(r.ok, `${kind} ${name} was accepted`).toBe(false);
          if (token === '' && kind === 'fib') continue;
          expectRefused(kind, r, true);
        }
        // Missing field, twice, wrong JSON type, an operator object.
        const bodies: [string, () => Promise<TestResponse>][] = [];
        if (kind === 'native') {
          bodies.push(['missing', () => server.call('POST', '/v1/refresh', { json: {} })]);
          bodies.push(['array', () => server.call('POST', '/v1/refresh', { json: { refreshToken: [valid] } })]);
          bodies.push(['object', () => server.call('POST', '/v1/refresh', { json: { refreshToken: { $ne: null } } })]);
        }
        if (kind === 'oauth') {
          const auth = { authorization: basic(app), 'content-type': 'application/x-www-form-urlencoded' };
          bodies.push(['missing', () => server.call('POST', '/oauth2/token', { body: 'grant_type=refresh_token', headers: auth })]);
          bodies.push(['twice', () => server.call('POST', '/oauth2/token', { body: `grant_type=refresh_token&refresh_token=${valid}&refresh_token=${valid}`, headers: auth })]);
          bodies.push(['bracket operator', () => server.call('POST', '/oauth2/token', { body: 'grant_type=refresh_token&refresh_token[$ne]=', headers: auth })]);
          bodies.push(['non-UTF-8', () => server.call('POST', '/oauth2/token', { body: 'grant_type=refresh_token&refresh_token=%C3%28', headers: auth })]);
        }
        if (kind === 'abitmedia') {
          const form = { 'content-type': 'application/x-www-form-urlencoded' };
          bodies.push(['missing', () => server.call('POST', '/v1/refreshToken', { json: {} })]);
          bodies.push(['twice (form)', () => server.call('POST', '/v1/refreshToken', { body: `refreshToken=${valid}&refreshToken=${valid}`, headers: form })]);
          bodies.push(['object', () => server.call('POST', '/v1/refreshToken', { json: { refreshToken: { $ne: null } } })]);
        }
        if (kind === 'jwtplus') {
          bodies.push(['missing', () => server.call('POST', `/app/${app.id}/renew`, { json: { ip: '10.0.0.1', useragent: 'x' }, headers: { authorization: app.appKey } })]);
          bodies.push(['array', () => server.call('POST', `/app/${app.id}/renew`, { json: { refresh_token: [valid], ip: '10.0.0.1', useragent: 'x' }, headers: { authorization: app.appKey } })]);
        }
        if (kind === 'flolive') {
          bodies.push(['missing', () => server.call('PUT', '/api/v2/auth/token', { json: { token: p.accessToken } })]);
          bodies.push(['object', () => server.call('PUT', '/api/v2/auth/token', { json: { token: p.accessToken, refreshToken: { $ne: null } } })]);
        }
        if (kind === 'fib') {
          bodies.push(['missing header', () => server.call('PATCH', `${FIB}/session`)]);
          bodies.push(['two tokens', () => server.call('PATCH', `${FIB}/session`, { headers: { authorization: `Bearer ${valid} ${valid}` } })]);
        }
        for (const [name, send] of bodies) {
          const res = await send();
          expect(res.status, `${kind} ${name}: ${res.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
          expect(res.status, `${kind} ${name}`).toBeLessThan(500);
          expect(res.text).not.toContain(valid);
        }
        // Nothing above consumed or revoked the real token.
        expect(await active(app, valid)).toBe(true);
        await rotate(kind, app, p);
      });

      it('R-16 refresh via GET or with the RT in the query string: 405 / refused, never echoed, nothing consumed', async () => {
        const app = await appFor(kind);
        const p = await login(app);
        const q = encodeURIComponent(p.refreshToken);
        const attempts: [string, string][] = {
          native: [['GET', `/v1/refresh?refreshToken=${q}`], ['POST', `/v1/refresh?refreshToken=${q}`]],
          oauth: [['GET', `/oauth2/token?grant_type=refresh_token&refresh_token=${q}`], ['POST', `/oauth2/token?grant_type=refresh_token&refresh_token=${q}`]],
          jwtplus: [['GET', `/app/${app.id}/renew?refresh_token=${q}`]],
          flolive: [['GET', `/api/v2/auth/token?refreshToken=${q}`], ['PUT', `/api/v2/auth/token?refreshToken=${q}`]],
          fib: [['GET', `${FIB}/session?token=${q}`], ['PATCH', `${FIB}/session?token=${q}`]],
          abitmedia: [['GET', `/v1/refreshToken?refreshToken=${q}`], ['POST', `/v1/refreshToken?refreshToken=${q}`]],
        }[kind] as [string, string][];
        for (const [method, path] of attempts) {
          const headers: Record<string, string> = kind === 'oauth' ? { authorization: basic(app) } : kind === 'jwtplus' ? { authorization: app.appKey } : {};
          const res = await server.call(method, path, { headers });
          if (method === 'GET') {
            expect(res.status, `${kind} GET`).toBe(405);
            expect(res.headers.get('allow')).toBeTruthy();
          } else {
            expect(res.status, `${kind} ${method} with the RT only in the query`).toBeGreaterThanOrEqual(400);
            expect(res.status).toBeLessThan(500);
          }
          expect(res.text).not.toContain(p.refreshToken);
          expect(res.text).not.toContain(q);
        }
        expect(await active(app, p.refreshToken)).toBe(true);
      });
    });
  }

  it('R-08 revocation endpoints: revoke R → R and the grant\'s ATs dead; garbage → 200; another client\'s token → no effect; bad client auth → 401', async () => {
    // Every API's way to revoke with a refresh token, or its access token where the API takes that.
    const revokers: [Kind, (app: App, pair: Pair) => Promise<TestResponse>][] = [
      ['native', (_a, p) => server.call('POST', '/v1/revoke', { json: { token: p.refreshToken } })],
      ['oauth', (a, p) => server.call('POST', '/oauth2/revoke', { form: { token: p.refreshToken }, headers: { authorization: basic(a) } })],
      ['jwtplus', (a, p) => server.call('POST', `/app/${a.id}/logout`, { json: { token: p.refreshToken }, headers: { authorization: a.appKey } })],
      ['fib', (_a, p) => server.call('POST', `${FIB}/logout`, { headers: { authorization: `Bearer ${p.accessToken}` } })],
      // floLIVE and Abitmedia have no revocation call of their own: their tokens are revoked through the native one.
      ['flolive', (_a, p) => server.call('POST', '/v1/revoke', { json: { token: p.refreshToken } })],
      ['abitmedia', (_a, p) => server.call('POST', '/v1/revoke', { json: { token: p.refreshToken } })],
    ];
    for (const [kind, revoke] of revokers) {
      const app = await appFor(kind);
      const p = await login(app);
      const res = await revoke(app, p);
      expect(res.status, `${kind} revoke: ${res.text}`).toBe(200);
      expectRefused(kind, await refresh(kind, app, p));
      expect(await active(app, p.accessToken)).toBe(false);
    }
    // Unknown or garbage → 200 (RFC 7009 §2.2).
    const a = await appFor('oauth');
    for (const token of ['garbage', 'rt_AAAA', 'a.b.c', 'x'.repeat(9000)]) {
      expect((await server.call('POST', '/oauth2/revoke', { form: { token }, headers: { authorization: basic(a) } })).status).toBe(200);
      expect((await server.call('POST', '/v1/revoke', { json: { token } })).status).toBe(200);
    }
    // Another client's token: no effect.
    const b = await appFor('oauth');
    const theirs = await login(b);
    expect((await server.call('POST', '/oauth2/revoke', { form: { token: theirs.refreshToken }, headers: { authorization: basic(a) } })).status).toBe(200);
    expect(await active(b, theirs.refreshToken)).toBe(true);
    // Bad client authentication.
    const bad = await server.call('POST', '/oauth2/revoke', { form: { token: theirs.refreshToken }, headers: { authorization: `Basic ${Buffer.from(`${b.id}:ak_wrong`).toString('base64')}` } });
    expect(bad.status).toBe(401);
    expect(bad.body.error).toBe('invalid_client');
    expect(bad.headers.get('www-authenticate')).toBeTruthy();
    expect(await active(b, theirs.refreshToken)).toBe(true);
  });

  it('R-03 binding (policy useragent; native and OAuth, where the client names its user agent): a retry from another client is reuse', async () => {
    for (const kind of ['native', 'oauth'] as Kind[]) {
      const app = await appFor(kind, { binding: 'useragent', reuseGrace: 10 });
      const send = (token: string, ua: string) => (kind === 'native'
        ? server.call('POST', '/v1/refresh', { json: { refreshToken: token }, headers: { 'user-agent': ua } })
        : server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: token }, headers: { authorization: basic(app), 'user-agent': ua } }));
      const rt = (res: TestResponse) => (kind === 'native' ? res.body.refreshToken : res.body.refresh_token) as string;
      const p0 = await login(app, 'bound', { userAgent: 'UA-1' });
      clock.advance(0.001);
      // A fresh token from another client: refused, and not consumed.
      expect((await send(p0.refreshToken, 'UA-2')).status).toBe(400);
      const r1 = await send(p0.refreshToken, 'UA-1');
      expect(r1.status).toBe(200);
      clock.advance(1);
      // The same client's retry inside the window: the same child. Another client's: reuse, the family dies.
      const same = await send(p0.refreshToken, 'UA-1');
      expect(rt(same)).toBe(rt(r1));
      const other = await send(p0.refreshToken, 'UA-2');
      expect(other.status).toBe(400);
      expect(await active(app, rt(r1))).toBe(false);
    }
  });

  it('R-05 on one instance, across APIs: 48 concurrent requests with one RT split over native, OAuth and the dialect endpoint', async () => {
    // (Across instances: test/multi_instance.test.ts.) The decision must not depend on the API that won.
    for (const dialect of ['jwtplus', 'flolive', 'fib', 'abitmedia'] as Kind[]) {
      for (const reuseGrace of [0, 10]) {
        const app = await appFor(dialect, { reuseGrace });
        const p0 = await login(app);
        const apis: Kind[] = ['native', 'oauth', dialect];
        const results = await Promise.all(Array.from({ length: 48 }, (_, i) => refresh(apis[i % 3] as Kind, app, p0)));
        const winners = results.filter((r) => r.ok);
        expect(new Set(winners.map((r) => r.pair?.refreshToken)).size, `${dialect} grace ${reuseGrace}`).toBe(1);
        if (reuseGrace === 0) {
          expect(winners.length, `${dialect}: one winner`).toBe(1);
          results.forEach((r, i) => { if (!r.ok) expectRefused(apis[i % 3] as Kind, r); });
          expect(await active(app, winners[0]?.pair?.refreshToken as string)).toBe(false);
        } else {
          expect(winners.length, `${dialect}: every retry answered`).toBe(48);
          const child = winners[0]?.pair as Pair;
          // The child continues through any API.
          await rotate(dialect, app, { ...child, accessToken: winners.find((w) => w.pair)?.pair?.accessToken as string });
        }
      }
    }
  });

  it('R-01/N5 JWTPlus with refreshNotBefore 0: a renewal in the millisecond of issuance works, never a 500, and stays one-time', async () => {
    // Each pair's jid is a fresh ULID, so renewing at the issuance instant cannot collide with the parent's id.
    const app = await appFor('jwtplus', { reuseGrace: 0 });
    const p0 = await login(app);
    const same = await server.call('POST', `/app/${app.id}/renew`, { json: { refresh_token: p0.refreshToken, ip: '10.0.0.9', useragent: 'x' }, headers: { authorization: app.appKey } });
    expect(same.status).toBe(200);
    expect(same.body.refresh_token).not.toBe(p0.refreshToken);
    const again = await server.call('POST', `/app/${app.id}/renew`, { json: { refresh_token: p0.refreshToken, ip: '10.0.0.9', useragent: 'x' }, headers: { authorization: app.appKey } });
    expect(again.status).toBe(404);
    expect(again.text).toBe('{"message":"invalid refresh token"}');
  });

  it('JWTPlus and FIB refuse a policy whose access tokens could not find their session (refreshTtl off, or accessTtl > refreshTtl)', async () => {
    // Their access tokens reach the session through the pair's refresh record: without one they read as revoked at once,
    // and with access outliving refresh they did from the prune that removed the expired record.
    for (const profile of ['jwtplus', 'fib']) {
      for (const policy of [{ refreshTtl: null }, { accessTtl: 7200, refreshTtl: 3600 }]) {
        const res = await server.call('POST', '/admin/apps', { json: { name: `trace-${profile}-${appCount += 1}`, profile, policy }, headers: admin });
        expect(res.status, JSON.stringify(policy)).toBe(400);
      }
      const app = await createApp(server, { name: `trace-${profile}-${appCount += 1}`, profile });
      const patched = await server.call('PATCH', `/admin/apps/${app.name}`, { json: { policy: { accessTtl: 2 * 86400 } }, headers: admin });
      expect(patched.status).toBe(400);
    }
  });

  it('R-12 scope (OAuth only; no other API carries scope): broader → invalid_scope and nothing consumed; narrower → OK, the original scope kept', async () => {
    const app = await appFor('oauth');
    const p = await login(app, 'scoped', { claims: { scope: 'read write' } });
    const broader = await refresh('oauth', app, p, { scopeParam: 'read admin' });
    expect(broader.res.status).toBe(400);
    expect(broader.res.body.error).toBe('invalid_scope');
    expect(await active(app, p.refreshToken)).toBe(true);
    const narrower = await refresh('oauth', app, p, { scopeParam: 'read' });
    expect(narrower.ok).toBe(true);
    expect(narrower.res.body.scope).toBe('read write');
    const again = await refresh('oauth', app, narrower.pair as Pair, { scopeParam: 'write' });
    expect(again.ok).toBe(true);
    expect(again.res.body.scope).toBe('read write');
    // R-03 × R-12: the identical request retried inside the grace window returns the same child (it used to be invalid_scope).
    const retry = await refresh('oauth', app, narrower.pair as Pair, { scopeParam: 'write' });
    expect(retry.ok, retry.res.text).toBe(true);
    expect(retry.pair?.refreshToken).toBe(again.pair?.refreshToken);
    // R-02 × R-12: a consumed token replayed with a scope is reuse (family revoked), not an invalid_scope that skips detection.
    const strict = await appFor('oauth', { reuseGrace: 0 });
    const s0 = await login(strict, 'scoped', { claims: { scope: 'read write' } });
    const s1 = await rotate('oauth', strict, s0);
    for (const scopeParam of ['read', 'admin']) {
      const replay = await refresh('oauth', strict, s0, { scopeParam });
      expectRefused('oauth', replay);
    }
    expect(await active(strict, s1.refreshToken)).toBe(false);
  });

  it('R-15 (storage and logs): RTs carry ≥ 128 bits, the database holds no issued RT, no log line contains one', async () => {
    expect(issued.size).toBeGreaterThan(100);
    for (const token of issued) if (token.startsWith('rt_')) expect(Buffer.from(token.slice(3), 'base64url').length).toBeGreaterThanOrEqual(16);
    const file = join(server.dir, 'rotor.db');
    const db = existsSync(file) ? new Database(file, { readonly: true }) : null; // (absent when run on PostgreSQL)
    if (db) try {
      // One row per session (SPEC §2.9): no row per token at all, and no token inside any session row.
      expect((db.prepare('SELECT count(*) AS n FROM refresh_tokens').get() as { n: number }).n).toBe(0);
      const rows = JSON.stringify(db.prepare('SELECT * FROM sessions').all());
      expect(rows.length).toBeGreaterThan(1000);
      for (const token of issued) expect(rows.includes(token)).toBe(false);
    } finally {
      db.close();
    }
    const logs = server.logs.join('\n');
    for (const token of issued) expect(logs.includes(token)).toBe(false);
  });
});
