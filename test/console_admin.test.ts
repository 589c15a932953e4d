import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedClock } from '../src/domain/clock.js';
import { ActivitySampler, quantileMs } from '../src/http/activity.js';
import { Metrics } from '../src/http/observability.js';
import { SqliteStore } from '../src/store/sqlite/sqlite_store.js';
import { rotor as cli } from './helpers/cli.js';
import { admin, createApp, issue, startTestServer, type TestServer } from './helpers/server.js';
import { startRedisCluster } from './helpers/redis_cluster.js';
import { createTestSchema } from './store/pg_harness.js';

/**
 * SPEC §4.3, the routes the console needs: subjects and sessions of an app a page at a time, revoking
 * one session or all of a subject's, the security events every instance records, and the activity
 * the charts draw. The same suite on SQLite, PostgreSQL and a Redis Cluster; two servers on one
 * database stand for two instances.
 */
type Store = 'sqlite' | 'postgres' | 'redis';

async function databaseEnv(store: Store): Promise<{ env: Record<string, string>; drop(): Promise<void> }> {
  if (store === 'redis') {
    const cluster = await startRedisCluster();
    return { env: { ROTOR_DATABASE_URL: cluster.url(`prefix=c${randomBytes(4).toString('hex')}`), ROTOR_MASTER_KEY: randomBytes(32).toString('base64') }, drop: () => cluster.stop() };
  }
  if (store === 'postgres') {
    const schema = await createTestSchema();
    return { env: { ROTOR_DATABASE_URL: schema.url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') }, drop: schema.drop };
  }
  const dir = mkdtempSync(join(tmpdir(), 'rotor-console-admin-'));
  return { env: { ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}` }, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

for (const store of ['sqlite', 'postgres', 'redis'] as const) {
  describe(`admin API for the console (${store})`, () => {
    let db: Awaited<ReturnType<typeof databaseEnv>>;
    let server: TestServer;
    let other: TestServer;
    let clock: FixedClock;
    const call = (method: string, path: string, json?: unknown, on: TestServer = server) => on.call(method, path, { json, headers: admin });

    beforeAll(async () => {
      db = await databaseEnv(store);
      clock = new FixedClock(Date.now());
      server = await startTestServer({ clock, env: { ...db.env, ROTOR_LOG_LEVEL: 'warn' } });
      other = await startTestServer({ clock, env: { ...db.env, ROTOR_LOG_LEVEL: 'warn' } });
    }, 60_000);
    afterAll(async () => {
      await server?.close();
      await other?.close();
      await db?.drop();
    });

    it('lists an app\'s subjects in id order, a page at a time, with their live sessions', async () => {
      const app = await createApp(server, { name: 'subjects-list' });
      const names = ['carol', 'alice', 'bob', 'dave', 'erin'];
      for (const name of names) await issue(server, app, name);
      await issue(server, app, 'alice');
      const bobs = await call('GET', '/admin/apps/subjects-list/sessions?subject=bob');
      expect((await call('DELETE', `/admin/apps/subjects-list/sessions/${bobs.body.sessions[0].id}`)).status).toBe(204);

      const first = await call('GET', '/admin/apps/subjects-list/subjects?limit=2');
      expect(first.status).toBe(200);
      expect(first.headers.get('cache-control')).toBe('no-store');
      expect(first.body.subjects.map((s: any) => [s.subject, s.liveSessions])).toEqual([['alice', 2], ['bob', 0]]);
      expect(first.body.subjects[0]).toMatchObject({ status: 'active', hasPassword: false, claims: {} });
      expect(first.body.subjects[0].passwordHash).toBeUndefined();
      expect(typeof first.body.next).toBe('string');
      const second = await call('GET', `/admin/apps/subjects-list/subjects?limit=2&cursor=${first.body.next}`);
      expect(second.body.subjects.map((s: any) => s.subject)).toEqual(['carol', 'dave']);
      const third = await call('GET', `/admin/apps/subjects-list/subjects?limit=2&cursor=${second.body.next}`);
      expect(third.body).toEqual({ subjects: [expect.objectContaining({ subject: 'erin', liveSessions: 1 })], next: null });
      // The default page holds them all; by the app's id as well as its name.
      expect((await call('GET', `/admin/apps/${app.id}/subjects`)).body.subjects).toHaveLength(5);
    });

    it('refuses bad paging with a clear 400 and an unknown app with 404', async () => {
      await createApp(server, { name: 'paging' });
      for (const bad of ['limit=0', 'limit=501', 'limit=x', 'limit=1.5', 'cursor=%20', 'cursor=not*base64']) {
        for (const route of ['subjects', 'sessions']) {
          const res = await call('GET', `/admin/apps/paging/${route}?${bad}`);
          expect(res.status, `${route}?${bad}`).toBe(400);
          expect(res.body.code).toBe('invalid_request');
        }
      }
      expect((await call('GET', '/admin/apps/paging/sessions?subject=%00')).status).toBe(400);
      expect((await call('GET', '/admin/apps/nope/subjects')).body.code).toBe('app_not_found');
      expect((await call('GET', '/admin/apps/nope/sessions')).body.code).toBe('app_not_found');
      expect((await call('GET', '/admin/events?since=yesterday')).status).toBe(400);
      expect((await call('GET', '/admin/events?limit=100000')).status).toBe(400);
    });

    it('lists sessions newest first with device, times and state; revoked ones say why', async () => {
      const app = await createApp(server, { name: 'sessions-list', policy: { reuseGrace: 0 } });
      const ua = 'Mozilla/5.0 (X11; Linux x86_64) Chrome/156';
      const a = await issue(server, app, 'alice', { ip: '203.0.113.7', userAgent: ua });
      clock.advance(1);
      const b = await issue(server, app, 'alice', { ip: '2001:db8::1', userAgent: 'curl/8' });
      clock.advance(1);
      const c = await issue(server, app, 'bob');
      // Reuse revokes b's session.
      const rotated = await server.call('POST', '/v1/refresh', { json: { refreshToken: b.refreshToken } });
      expect(rotated.status).toBe(200);
      expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: b.refreshToken } })).status).toBe(400);

      const all = await call('GET', '/admin/apps/sessions-list/sessions');
      expect(all.body.sessions.map((s: any) => s.id)).toEqual([c.sessionId, b.sessionId, a.sessionId]);
      const alice = await call('GET', '/admin/apps/sessions-list/sessions?subject=alice&limit=1');
      expect(alice.body.sessions.map((s: any) => s.id)).toEqual([b.sessionId]);
      const older = await call('GET', `/admin/apps/sessions-list/sessions?subject=alice&limit=1&cursor=${alice.body.next}`);
      expect(older.body).toMatchObject({ sessions: [{ id: a.sessionId }], next: null });
      const [view] = older.body.sessions;
      expect(view).toMatchObject({
        subject: 'alice', state: 'live', ip: '203.0.113.7', userAgent: ua, lastIp: '203.0.113.7', lastUserAgent: ua, rotations: 0, dpopBound: false, revokedAt: null, revokeReason: null,
      });
      for (const field of ['createdAt', 'lastRenewedAt', 'expiresAt', 'refreshExpiresAt']) expect(Date.parse(view[field]), field).toBeGreaterThan(0);
      expect(JSON.stringify(all.body)).not.toMatch(/rt_|successor|sealed|locator/);
      const reused = all.body.sessions[1];
      expect(reused).toMatchObject({ state: 'revoked', revokeReason: 'reuse', rotations: 1, userAgent: 'curl/8' });
      // Expired: past its refresh token's life.
      clock.advance(31 * 86400);
      const later = await call('GET', '/admin/apps/sessions-list/sessions?subject=bob');
      expect(later.body.sessions[0].state).toBe('expired');
      clock.advance(-31 * 86400);
    });

    it('revokes one session (its refresh token is refused at once) and all of a subject\'s', async () => {
      const app = await createApp(server, { name: 'revoking' });
      const theirs = await createApp(server, { name: 'someone-else' });
      const one = await issue(server, app, 'alice');
      const two = await issue(server, app, 'alice');
      const three = await issue(server, app, 'alice');
      const foreign = await issue(server, theirs, 'alice');

      expect((await call('DELETE', `/admin/apps/revoking/sessions/${one.sessionId}`)).status).toBe(204);
      // Through the other instance: the revocation is in the store, not in a process.
      const refused = await other.call('POST', '/v1/refresh', { json: { refreshToken: one.refreshToken } });
      expect(refused.status).toBe(400);
      expect(refused.body.detail).toBe('revoked');
      expect((await call('DELETE', `/admin/apps/revoking/sessions/${foreign.sessionId}`)).status).toBe(404);
      expect((await call('DELETE', '/admin/apps/revoking/sessions/01ARZ3NDEKTSV4RRFFQ69G5FAV')).status).toBe(404);
      // Revoking again is no error.
      expect((await call('DELETE', `/admin/apps/revoking/sessions/${one.sessionId}`)).status).toBe(204);

      const all = await call('DELETE', '/admin/apps/revoking/subjects/alice/sessions');
      expect(all.status).toBe(200);
      expect(all.body).toEqual({ revoked: 2 });
      for (const pair of [two, three]) {
        expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } })).status).toBe(400);
      }
      expect((await call('DELETE', '/admin/apps/revoking/subjects/alice/sessions')).body).toEqual({ revoked: 0 });
      // Another app's subject of the same name is untouched.
      expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: foreign.refreshToken } })).status).toBe(200);
      const listed = await call('GET', '/admin/apps/revoking/sessions?subject=alice');
      expect(listed.body.sessions.map((s: any) => [s.state, s.revokeReason])).toEqual([['revoked', 'revoked'], ['revoked', 'revoked'], ['revoked', 'revoked']]);
    });

    it('records security events in the store: every instance sees every event, newest last', async () => {
      const start = await call('GET', '/admin/events');
      const since = start.body.next ?? '0';
      const app = await createApp(server, { name: 'eventful', policy: { reuseGrace: 0 } });
      const pair = await issue(server, app, 'mallory');
      await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
      await other.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } }); // reuse, on the other instance
      const rotated = await call('POST', '/admin/apps/eventful/keys/rotate');
      await call('POST', `/admin/apps/eventful/keys/${rotated.body.kid}/revoke`, undefined, other);
      await call('PUT', '/admin/apps/eventful/subjects/trent', { status: 'disabled' });
      await call('PUT', '/admin/apps/eventful/subjects/walter', { password: 'correct horse' });
      await server.call('POST', '/v1/apps/eventful/login', { json: { username: 'walter', password: 'wrong' } });
      await call('DELETE', '/admin/apps/eventful/subjects/walter');
      const victim = await issue(server, app, 'victor');
      await call('DELETE', `/admin/apps/eventful/sessions/${victim.sessionId}`);
      await Promise.all([server.rotor.events.flushed(), other.rotor.events.flushed()]);

      for (const on of [server, other]) {
        const res = await call('GET', `/admin/events?since=${since}`, undefined, on);
        expect(res.status).toBe(200);
        expect(res.headers.get('cache-control')).toBe('no-store');
        const mine = res.body.events.filter((e: any) => e.appId === app.id);
        expect(mine.map((e: any) => e.event)).toEqual([
          'reuse_detected', 'key_rotated', 'key_revoked', 'subject_disabled', 'login_failed', 'subject_deleted', 'session_revoked',
        ]);
        expect(mine[0]).toMatchObject({ sessionId: pair.sessionId });
        expect(mine[1]).toMatchObject({ kid: rotated.body.kid });
        expect(mine[6]).toMatchObject({ sessionId: victim.sessionId, reason: 'revoked' });
        const ids = res.body.events.map((e: any) => Number(e.id));
        expect(ids).toEqual([...ids].sort((x, y) => x - y));
        expect(res.body.next).toBe(res.body.events.at(-1).id);
        for (const e of res.body.events) expect(Date.parse(e.at)).toBeGreaterThan(0);
        expect(JSON.stringify(res.body)).not.toMatch(/correct horse|wrong|rt_|ak_/);
      }
      // Paging: since an id, a limit, and nothing new after the last.
      const page = await call('GET', `/admin/events?since=${since}&limit=2`);
      expect(page.body.events).toHaveLength(2);
      const rest = await call('GET', `/admin/events?since=${page.body.next}`);
      expect(Number(rest.body.events[0].id)).toBeGreaterThan(Number(page.body.next));
      const none = await call('GET', `/admin/events?since=${rest.body.next}`);
      expect(none.body).toEqual({ events: [], next: rest.body.next });
      // Without since: the newest, newest last; since as a time.
      const newest = await call('GET', '/admin/events?limit=1');
      expect(newest.body.events[0].id).toBe(rest.body.next);
      const byTime = await call('GET', `/admin/events?since=${encodeURIComponent(new Date(clock.now() - 1000).toISOString())}`);
      expect(byTime.body.events.length).toBeGreaterThanOrEqual(7);
    });

    it('a CLI command\'s events join the feed', async () => {
      await createApp(server, { name: 'from-cli' });
      const before = (await call('GET', '/admin/events?limit=1')).body.next;
      const res = await cli(['--json', 'keys', 'rotate', 'from-cli'], db.env);
      expect(res.code, res.stderr).toBe(0);
      const after = await call('GET', `/admin/events?since=${before}`);
      expect(after.body.events.map((e: any) => e.event)).toEqual(['key_rotated']);
    });

    it('a flood of login failures is recorded within a budget; critical events always are', async () => {
      const app = await createApp(server, { name: 'flooded' });
      await call('PUT', '/admin/apps/flooded/subjects/u', { password: 'right password' });
      const before = (await call('GET', '/admin/events?limit=1')).body.next;
      for (let i = 0; i < 60; i += 1) server.rotor.observer.event('login_failed', { appId: app.id });
      const pair = await issue(server, app, 'u');
      await call('DELETE', `/admin/apps/flooded/sessions/${pair.sessionId}`);
      clock.advance(5);
      server.rotor.observer.event('login_failed', { appId: app.id });
      await server.rotor.events.flushed();
      const events = (await call('GET', `/admin/events?since=${before}&limit=1000`)).body.events;
      const failures = events.filter((e: any) => e.event === 'login_failed');
      expect(failures.length).toBeGreaterThan(0);
      expect(failures.length).toBeLessThanOrEqual(31);
      expect(failures.at(-1).suppressedBefore).toBeGreaterThan(0);
      expect(events.filter((e: any) => e.event === 'session_revoked')).toHaveLength(1);
    });

    it('events are pruned after ROTOR_REVOKED_RETENTION', async () => {
      const app = await createApp(server, { name: 'pruned-events' });
      const pair = await issue(server, app, 'old');
      await call('DELETE', `/admin/apps/pruned-events/sessions/${pair.sessionId}`);
      await server.rotor.events.flushed();
      const ours = async () => (await call('GET', '/admin/events?limit=1000')).body.events.filter((e: any) => e.appId === app.id);
      expect(await ours()).toHaveLength(1);
      await server.rotor.prune(3600);
      expect(await ours()).toHaveLength(1);
      clock.advance(3601);
      await server.rotor.prune(3600);
      expect(await ours()).toHaveLength(0);
    });

    it('GET /admin/stats: the charts\' series, with this instance\'s interval in progress as its last point', async () => {
      const app = await createApp(server, { name: 'charted', policy: { reuseGrace: 0 } });
      const pair = await issue(server, app);
      clock.advance(2);
      // Totals over the window; the clock stays put from here, so both reads cover the same hour. The
      // sampler runs on real timers: it may close an interval in between, which moves counts from the
      // live point into a stored one but never loses them.
      const totals = (body: any) => ({
        rotated: body.points.reduce((n: number, p: any) => n + Math.round(p.refreshPerSecond.rotated * p.seconds), 0),
        reuse: body.points.reduce((n: number, p: any) => n + p.reuse, 0),
      });
      const before = totals((await call('GET', '/admin/stats')).body);
      await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
      await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
      const res = await call('GET', '/admin/stats');
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toMatchObject({ stepSeconds: 10, windowSeconds: 3600 });
      const live = res.body.points.at(-1);
      expect(live.partial).toBe(true);
      expect(res.body.points.slice(0, -1).every((p: any) => p.partial === false)).toBe(true);
      // One rotation and one reuse (the second presentation, grace 0) were added, and nothing else.
      expect(totals(res.body)).toEqual({ rotated: before.rotated + 1, reuse: before.reuse + 1 });
      expect(live.p99Ms).toBeGreaterThan(0);
    });
  });
}

describe('activity samples', () => {
  it('every instance\'s samples add up, in 10-second steps; p99 from the summed histograms', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-activity-'));
    const store = new SqliteStore(join(dir, 'rotor.db'));
    await store.migrate();
    try {
      const clock = new FixedClock(Date.UTC(2026, 5, 1, 12, 0, 0));
      const metrics = [new Metrics({ defaultMetrics: false }), new Metrics({ defaultMetrics: false })];
      const samplers = metrics.map((m) => new ActivitySampler(m, store, clock));
      for (const s of samplers) await s.start();
      metrics[0]!.refreshes.inc({ outcome: 'rotated', reason: 'ok' }, 50);
      metrics[1]!.refreshes.inc({ outcome: 'rotated', reason: 'ok' }, 30);
      metrics[1]!.refreshes.inc({ outcome: 'reuse', reason: 'reused' }, 2);
      for (let i = 0; i < 99; i += 1) metrics[0]!.latency.observe({ route: '/v1/refresh' }, 0.003);
      metrics[1]!.latency.observe({ route: '/v1/refresh' }, 0.4);
      metrics[1]!.latency.observe({ route: '/admin/stats' }, 2); // the console's own calls are not the service's latency
      metrics[0]!.requests.inc({ route: '/v1/refresh', method: 'POST', status: '200' }, 99);
      clock.advance(10);
      for (const s of samplers) await s.sample();
      clock.advance(3);
      const series = await samplers[0]!.series();
      expect(series.instances).toBe(2);
      const [full, partial] = series.points;
      expect(full).toMatchObject({ partial: false, seconds: 10, refreshPerSecond: { rotated: 8, reuse: 0.2, retry: 0, refused: 0 }, reuse: 2, requestsPerSecond: 9.9 });
      expect(full!.p99Ms).toBeGreaterThan(2.5);
      expect(full!.p99Ms).toBeLessThanOrEqual(5);
      expect(partial).toMatchObject({ partial: true, seconds: 3, reuse: 0, p99Ms: null });
      for (const s of samplers) s.stop();
      // Pruned after two hours.
      expect((await store.listActivity(0)).length).toBe(2);
      await store.pruneActivity({ eventsBefore: 0, samplesBefore: clock.now() + 1 });
      expect(await store.listActivity(0)).toEqual([]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('quantiles as histogram_quantile estimates them', () => {
    expect(quantileMs(0.99, new Map([[0.001, 0], [0.01, 100], [Infinity, 100]]))).toBeCloseTo(9.91, 1);
    expect(quantileMs(0.5, new Map([[0.1, 0], [Infinity, 4]]))).toBe(100);
    expect(quantileMs(0.99, new Map([[Infinity, 0]]))).toBeNull();
  });
});
