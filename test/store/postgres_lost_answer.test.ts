import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/domain/errors.js';
import type { UnconfirmedRotations } from '../../src/store/postgres/outcome.js';
import { PostgresStore } from '../../src/store/postgres/postgres_store.js';
import { createApp, issue, type TestResponse, type TestServer, startTestServer } from '../helpers/server.js';
import { TcpProxy } from '../helpers/tcp_proxy.js';
import { appKeyRecord, appRecord, chainRecord, sessionRecord, signingKeyRecord } from './conformance.js';
import { createTestDatabase, createTestSchema } from './pg_harness.js';

/**
 * SECURITY-CASES F-02 on PostgreSQL: a rotation that committed but whose reply was lost with its
 * connection (a proxy drops PostgreSQL's answer and cuts the connection). Without grace, answering 503
 * and letting the client retry its parent would judge that retry reuse and log the user out. The store
 * settles the outcome from the row instead (200 with the successor), and where it cannot, it answers 503
 * and keeps the parent redeemable for the same successor until the successor is presented.
 */
describe('PostgreSQL: a rotation whose answer is lost with its connection', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: TcpProxy;
  /** Through the proxy. */
  let server: TestServer;
  /** Another instance on the same database, directly. */
  let other: TestServer;
  let direct: pg.Client;

  /** `databaseUrl` through the proxy, with short timeouts: a settling read that cannot be had gives up soon. */
  const throughProxy = (databaseUrl: string): string => {
    const url = new URL(databaseUrl);
    url.port = String(proxy.port);
    for (const name of ['statement_timeout_ms', 'connect_timeout_ms']) url.searchParams.set(name, '500');
    return url.toString();
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    proxy = new TcpProxy('127.0.0.1', 5432);
    await proxy.start();
    const masterKey = randomBytes(32).toString('base64');
    server = await startTestServer({ env: { ROTOR_DATABASE_URL: throughProxy(database.url), ROTOR_MASTER_KEY: masterKey } });
    other = await startTestServer({ env: { ROTOR_DATABASE_URL: database.url, ROTOR_MASTER_KEY: masterKey } });
    direct = new pg.Client({ connectionString: database.url });
    await direct.connect();
  });

  afterAll(async () => {
    await direct?.end();
    await other?.close();
    await server?.close();
    await proxy?.close();
    await database?.drop();
  });

  const refresh = (on: TestServer, refreshToken: string) => on.call('POST', '/v1/refresh', { json: { refreshToken } });

  const row = async (sessionId: string) => {
    const [r] = (await direct.query('SELECT * FROM sessions WHERE id = $1', [sessionId])).rows;
    return { generation: Number(r.generation), revoked_at: r.revoked_at as string | null, unconfirmed_generation: r.unconfirmed_generation === null ? null : Number(r.unconfirmed_generation) };
  };

  /** The successor works once, its parent is reuse afterwards (the session dies), as on any rotation without grace. */
  async function expectOneLiveChain(sessionId: string, parent: string, successor: string): Promise<void> {
    expect(await row(sessionId)).toMatchObject({ generation: 2, revoked_at: null });
    const next = await refresh(other, successor);
    expect(next.status).toBe(200);
    expect(await row(sessionId)).toMatchObject({ generation: 3, revoked_at: null });
    const reuse = await refresh(other, parent);
    expect(reuse.status).toBe(400);
    expect(reuse.body).toMatchObject({ code: 'invalid_refresh_token', detail: 'reused' });
    expect((await row(sessionId)).revoked_at).not.toBeNull();
  }

  const expectUnavailable = (res: TestResponse) => {
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
  };

  /**
   * A store of its own (through the proxy, or not) on a new schema, with an app and a session per
   * subject; everything is closed and dropped afterwards.
   */
  async function onStore(
    through: 'proxy' | 'direct', subjects: string[],
    test: (store: PostgresStore, sessions: ReturnType<typeof sessionRecord>[], schemaUrl: string) => Promise<void>,
  ): Promise<void> {
    const schema = await createTestSchema();
    const store = new PostgresStore(through === 'proxy' ? throughProxy(schema.url) : schema.url);
    try {
      await store.migrate();
      const app = appRecord();
      await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const sessions = subjects.map((subject) => sessionRecord(app.id, subject));
      for (const session of sessions) await store.issueSession({ session, newSubjectClaims: {} });
      await test(store, sessions, schema.url);
    } finally {
      proxy.restore();
      await store.close();
      await schema.drop();
    }
  }

  /** Waits until the instance that answered 503 has marked the row unconfirmed for `generation`. */
  async function untilMarked(sessionId: string, generation: number, what: string): Promise<void> {
    for (let attempt = 0; (await row(sessionId)).unconfirmed_generation !== generation; attempt += 1) {
      if (attempt > 100) throw new Error(`${what} was never marked unconfirmed`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A refresh whose rotation the proxy holds on its way (its client sees the connection break): 503. */
  async function refreshHeld(name: string) {
    const app = await createApp(server, { name, policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const held = proxy.holdRequestTo('rotor_rotate_session\0');
    const res = await refresh(server, pair.refreshToken);
    const release = await held;
    expectUnavailable(res);
    return { pair, release };
  }

  it('F-02 a single rotation (rotateOne) committed, its reply lost: 200 with a successor that works, one live chain', async () => {
    const app = await createApp(server, { name: 'lost-one', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const lost = proxy.loseAnswerTo('rotor_rotate_session\0');
    const res = await refresh(server, pair.refreshToken);
    await lost;
    expect(res.status).toBe(200);
    await expectOneLiveChain(pair.sessionId, pair.refreshToken, res.body.refreshToken);
  });

  it('F-02 rotations of one group-commit batch (rotateMany) committed, the reply lost: each gets 200 and a working successor', async () => {
    const app = await createApp(server, { name: 'lost-many', policy: { reuseGrace: 0 } });
    // The batch forms when refreshes land in one event-loop turn: tried until one did.
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const pairs = await Promise.all(Array.from({ length: 8 }, (_, i) => issue(server, app, `user${attempt}-${i}`)));
      let happened = false;
      const lost = proxy.loseAnswerTo('rotor_rotate_sessions\0').then(() => { happened = true; });
      const results = await Promise.all(pairs.map((pair) => refresh(server, pair.refreshToken)));
      await Promise.race([lost, new Promise((r) => setTimeout(r, 100))]);
      proxy.disarm();
      expect(results.map((r) => r.status)).toEqual(pairs.map(() => 200));
      if (!happened) continue;
      for (const [i, pair] of pairs.entries()) await expectOneLiveChain(pair.sessionId, pair.refreshToken, results[i]!.body.refreshToken);
      return;
    }
    throw new Error('no refreshes were ever group-committed');
  });

  it('F-02 the request was lost instead (nothing committed): 503, and the retry with the same token rotates', async () => {
    const app = await createApp(server, { name: 'lost-request', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const lost = proxy.loseAnswerTo('rotor_rotate_session\0', { request: true });
    const res = await refresh(server, pair.refreshToken);
    await lost;
    expectUnavailable(res);
    expect((await row(pair.sessionId)).generation).toBe(1);
    const retry = await refresh(server, pair.refreshToken);
    expect(retry.status).toBe(200);
    await expectOneLiveChain(pair.sessionId, pair.refreshToken, retry.body.refreshToken);
  });

  it('F-02 committed, its reply lost, and the database out before it could be settled: 503, then the retry (on another instance) gets the same successor, which works', async () => {
    const app = await createApp(server, { name: 'lost-unsettled', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const lost = proxy.loseAnswerTo('rotor_rotate_session\0', { then: 'reset' });
    const res = await refresh(server, pair.refreshToken);
    await lost;
    expectUnavailable(res);
    proxy.restore();
    // Once the database answers again, the instance that answered 503 marks the row (it shows the rotation).
    await untilMarked(pair.sessionId, 2, 'the rotation');
    const retry = await refresh(other, pair.refreshToken);
    expect(retry.status).toBe(200);
    // The client lost that answer too: the parent still redeems for the same successor, on either instance.
    const again = await refresh(server, pair.refreshToken);
    expect(again.status).toBe(200);
    expect(again.body.refreshToken).toBe(retry.body.refreshToken);
    await expectOneLiveChain(pair.sessionId, pair.refreshToken, retry.body.refreshToken);
  });

  it('F-02 a rotation held on its way while its client gave up, then run before its deadline: 503, and the retry gets the successor it committed', async () => {
    // The settling read found nothing yet, with the deadline ahead: the statement may still commit.
    const { pair, release } = await refreshHeld('held-in-time');
    expect((await row(pair.sessionId)).generation).toBe(1);
    await release();
    expect((await row(pair.sessionId)).generation).toBe(2); // it committed, late
    // The instance that answered 503 remembered it, and marks the row now that it shows it.
    await untilMarked(pair.sessionId, 2, 'the late rotation');
    const retry = await refresh(other, pair.refreshToken);
    expect(retry.status).toBe(200);
    await expectOneLiveChain(pair.sessionId, pair.refreshToken, retry.body.refreshToken);
  });

  it('F-02 a rotation held on its way past its deadline, then run: it rotates nothing, and the retry rotates', async () => {
    const { pair, release } = await refreshHeld('held-too-long');
    // The deadline: the connect and statement timeouts (500 ms each here) and 3 s more, on the database's clock.
    await new Promise((r) => setTimeout(r, 4500));
    await release();
    expect((await row(pair.sessionId)).generation).toBe(1);
    const retry = await refresh(other, pair.refreshToken);
    expect(retry.status).toBe(200);
    await expectOneLiveChain(pair.sessionId, pair.refreshToken, retry.body.refreshToken);
  });

  it('a rotation past its deadline on arrival (a clock offset gone wrong) is 503, not a lost race, and the offset is sampled again', async () => {
    await onStore('direct', ['alice', 'bob', 'carol'], async (store, sessions) => {
      const marks = sessions.map((_, i) => ({ key: `late-proof-${i}-${randomBytes(4).toString('hex')}`, expiresAt: Date.now() + 60_000 }));
      const rotation = (sessionId: string, dpopProof?: { key: string; expiresAt: number }) => store.rotateSession({
        sessionId, expectGeneration: 1, next: chainRecord(2), now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0, ...(dpopProof ? { dpopProof } : {}),
      });
      const offset = store as unknown as { c: { clockOffsetMs: number } };
      // As if this host's clock were a minute ahead of the database's: every deadline already past there.
      offset.c.clockOffsetMs = -60_000;
      await expect(rotation(sessions[0]!.id)).rejects.toBeInstanceOf(StoreUnavailableError); // alone (rotateOne)
      offset.c.clockOffsetMs = -60_000;
      await expect(rotation(sessions[0]!.id, marks[0])).rejects.toBeInstanceOf(StoreUnavailableError); // alone, with a DPoP mark
      offset.c.clockOffsetMs = -60_000;
      const batch = await Promise.allSettled([rotation(sessions[1]!.id, marks[1]), rotation(sessions[2]!.id, marks[2])]); // one batch (rotateMany)
      expect(batch.map((o) => o.status === 'rejected' && o.reason instanceof StoreUnavailableError)).toEqual([true, true]);
      for (const session of sessions) expect((await store.findSession(session.id))?.session.refresh?.generation).toBe(1);
      // Nor was any proof spent: each mark is still unused.
      for (const mark of marks) expect(await store.useDpopProof(mark)).toBe(true);
      // The late answers sampled the clock again: the same rotations now go through.
      for (let attempt = 0; offset.c.clockOffsetMs < -30_000; attempt += 1) {
        if (attempt > 100) throw new Error('the clock was never sampled again');
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await Promise.all(sessions.map((session) => rotation(session.id)))).toEqual(sessions.map(() => ({ rotated: true })));
    });
  });

  it('F-02 a remembered rotation that commits slowly, past its deadline, while the mark waits for it: marked, not forgotten', async () => {
    await onStore('direct', ['alice'], async (store, [session], schemaUrl) => {
      const internals = store as unknown as { c: { databaseNow(): number }; unconfirmed: UnconfirmedRotations };
      const late = new pg.Client({ connectionString: schemaUrl });
      await late.connect();
      try {
        // The rotation locked the row and found itself in time; its COMMIT is slow (a stalled fsync, a synchronous replica).
        const rotationId = '777';
        await late.query('BEGIN');
        await late.query('UPDATE sessions SET generation = 2, rotation_id = $2 WHERE id = $1', [session!.id, rotationId]);
        // Its answer was lost and the settling read could not decide: remembered, with a deadline 1 s ahead.
        const input = { sessionId: session!.id, expectGeneration: 1, next: chainRecord(2), now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0 };
        internals.unconfirmed.remember([{ input, rotationId, deadline: internals.c.databaseNow() + 1000 }], []);
        await new Promise((r) => setTimeout(r, 1300)); // the mark is waiting for the row lock, past the deadline
        await late.query('COMMIT');
        for (let attempt = 0; (await store.findSession(session!.id))?.rotation !== 'unconfirmed'; attempt += 1) {
          if (attempt > 60) throw new Error('the rotation that committed was forgotten unmarked');
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        await late.end();
      }
    });
  });

  it('F-02 two racing rotations of one session in one batch, the reply lost and the database out: the one that won is remembered and marked', async () => {
    await onStore('proxy', ['alice'], async (store, [session], schemaUrl) => {
      const watcher = new PostgresStore(schemaUrl);
      try {
        // Two tabs present the same token in one event-loop turn: one batch, two inputs for one row.
        const rotation = (tab: number) => store.rotateSession({
          sessionId: session!.id, expectGeneration: 1, next: { ...chainRecord(2), successorSealed: Buffer.from([tab]) },
          now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0,
        });
        const lost = proxy.loseAnswerTo('rotor_rotate_sessions\0', { then: 'reset' });
        const outcomes = await Promise.allSettled([rotation(1), rotation(2)]);
        await lost;
        expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
        proxy.restore();
        // Whichever of the two the row shows is the one marked, once the database answers again.
        for (let attempt = 0; (await watcher.findSession(session!.id))?.rotation !== 'unconfirmed'; attempt += 1) {
          if (attempt > 100) throw new Error('the winning rotation was never marked unconfirmed');
          await new Promise((r) => setTimeout(r, 50));
        }
        expect((await watcher.findSession(session!.id))?.session.refresh?.generation).toBe(2);
      } finally {
        await watcher.close();
      }
    });
  });

  it('F-02 a DPoP rotation (rotateOneWithMark) committed, its reply lost: rotated, with its mark', async () => {
    await onStore('proxy', ['alice'], async (store, [session]) => {
      const mark = { key: `proof-${randomBytes(4).toString('hex')}`, expiresAt: Date.now() + 60_000 };
      const lost = proxy.loseAnswerTo('rotor_rotate_session_marked\0');
      const result = await store.rotateSession({
        sessionId: session!.id, expectGeneration: 1, next: chainRecord(2), now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0, dpopProof: mark,
      });
      await lost;
      expect(result).toEqual({ rotated: true });
      expect((await store.findSession(session!.id))?.session.refresh?.generation).toBe(2);
      expect(await store.useDpopProof(mark)).toBe(false); // recorded with the rotation
    });
  });
});
