import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RotorError, StoreUnavailableError } from '../../src/domain/errors.js';
import type { Session } from '../../src/domain/types.js';
import { PostgresStore, postgresOptionsFromUrl } from '../../src/store/postgres/postgres_store.js';
import { classifyPgError } from '../../src/store/postgres/errors.js';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/schema.js';
import {
  appKeyRecord, appRecord, chainRecord, describeStoreConformance, sessionRecord, signingKeyRecord,
} from './conformance.js';
import { createApp, issue, startTestServer } from '../helpers/server.js';
import { TcpProxy } from '../helpers/tcp_proxy.js';
import { createTestDatabase, urlWithSchema } from './pg_harness.js';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let admin: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  await database?.drop();
});

/** Waits until `n` Rotor connections of this database wait for a lock (read from the server, not a clock). */
async function waitForLockWaiters(n: number): Promise<void> {
  for (;;) {
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE application_name = 'rotor' AND wait_event_type = 'Lock' AND datname = current_database()`,
    );
    if (rows[0].n >= n) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Opens every pooled connection of the given stores (ten each, the default pool) before a race. */
async function warm(...stores: PostgresStore[]): Promise<void> {
  await Promise.all(stores.flatMap((s) => Array.from({ length: 10 }, () => s.findSession('warm-up'))));
}

/** Each conformance test gets an empty schema of its own in this run's database. */
const freshSchema = async (): Promise<{ url: string; drop(): Promise<void> }> => {
  const schema = `t_${randomBytes(5).toString('hex')}`;
  await admin.query(`CREATE SCHEMA ${schema}`);
  return { url: urlWithSchema(database.url, schema), drop: async () => { await admin.query(`DROP SCHEMA ${schema} CASCADE`); } };
};

/**
 * A migrated store in a fresh schema with one app, and a direct connection to the same schema;
 * everything is closed and dropped after `work`, whatever it throws.
 */
async function withStore(
  work: (ctx: { store: PostgresStore; direct: pg.Client; app: ReturnType<typeof appRecord>; url: string }) => Promise<void>,
  options: ConstructorParameters<typeof PostgresStore>[1] = {},
): Promise<void> {
  const { url, drop } = await freshSchema();
  const store = new PostgresStore(url, options);
  const direct = new pg.Client({ connectionString: url });
  await direct.connect();
  try {
    await store.migrate();
    const app = appRecord();
    await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
    await work({ store, direct, app, url });
  } finally {
    await direct.end();
    await store.close();
    await drop();
  }
}

describeStoreConformance('postgres', {
  clock: true,
  async freshDatabase() {
    const { url, drop } = await freshSchema();
    return {
      open: async () => new PostgresStore(url, { poolMax: 10 }),
      dispose: drop,
      atVersion: async (version, statements) => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
          for (const [i, migration] of POSTGRES_MIGRATIONS.slice(0, version).entries()) {
            await client.query(migration);
            await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [i + 1, Date.now()]);
          }
          for (const statement of statements) await client.query(statement);
        } finally {
          await client.end();
        }
      },
    };
  },
  rateHits: true,
});

/** Alice's session at the first generation of its chain. */
async function seedAlice(store: PostgresStore, appId: string) {
  const session = sessionRecord(appId, 'alice');
  await store.issueSession({ session, newSubjectClaims: {} });
  return { session };
}

/** One session per subject, in order, at the first generation of its chain. */
async function seedSubjects(store: PostgresStore, appId: string, subjects: string[]): Promise<Session[]> {
  const sessions = [];
  for (const subject of subjects) {
    const session = sessionRecord(appId, subject);
    await store.issueSession({ session, newSubjectClaims: {} });
    sessions.push(session);
  }
  return sessions;
}

/** The rotation of `session`'s chain from generation `from`. */
const rotationOf = (session: Session, from = 1, now = 2) => ({
  sessionId: session.id, expectGeneration: from, next: chainRecord(from + 1), now, lastIp: null, lastUserAgent: null, horizonAt: 0,
});

describe('postgres specifics', () => {
  it('a rotation waiting on a revocation that then commits rotates nothing', async () => {
    await withStore(async ({ store, direct: locker, app }) => {
      const { session } = await seedAlice(store, app.id);
      // The revocation holds the session row, uncommitted, while the rotation starts.
      await locker.query('BEGIN');
      await locker.query('UPDATE sessions SET revoked_at = 1, revoke_reason = $2 WHERE id = $1', [session.id, 'logout']);
      const rotation = store.rotateSession(rotationOf(session));
      await waitForLockWaiters(1); // the rotation is blocked on that row lock
      await locker.query('COMMIT');
      expect(await rotation).toEqual({ rotated: false });
      expect((await store.findSession(session.id))?.session.refresh?.generation).toBe(1);
    });
  });

  it('rotations of one generation queue on the session row: the first wins, the rest re-check and lose; a revocation queued behind them revokes the new generation', async () => {
    await withStore(async ({ store, direct: blocker, app }) => {
      const { session } = await seedAlice(store, app.id);
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE', [session.id]);
      const first = store.rotateSession(rotationOf(session));
      await waitForLockWaiters(1);
      const second = store.rotateSession(rotationOf(session));
      await waitForLockWaiters(2);
      const revocation = store.revokeSession(session.id, 'logout', 3);
      await waitForLockWaiters(3);
      await blocker.query('ROLLBACK');
      expect(await Promise.all([first, second, revocation])).toEqual([{ rotated: true }, { rotated: false }, true]);
      expect((await store.findSession(session.id))?.session).toMatchObject({ revokedAt: 3, refresh: { generation: 2 } });
    });
  });

  it('S2-17 a server whose default isolation is SERIALIZABLE still decides a 50-way rotation race without errors (READ COMMITTED is a startup option, not a swallowed SET)', async () => {
    const { url, drop } = await freshSchema();
    const serializable = new URL(url);
    serializable.searchParams.set('options', `${serializable.searchParams.get('options')} -c default_transaction_isolation=serializable`);
    const a = new PostgresStore(serializable.toString());
    const b = new PostgresStore(serializable.toString());
    try {
      await a.migrate();
      const app = appRecord();
      await a.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const session = sessionRecord(app.id, 'alice');
      await a.issueSession({ session, newSubjectClaims: {} });
      await warm(a, b); // connections open, so the 50 statements really overlap on the server
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).rotateSession(rotationOf(session))));
      expect(results.filter((r) => r.rotated)).toHaveLength(1);
    } finally {
      await a.close();
      await b.close();
      await drop();
    }
  });

  it('prune works through a backlog larger than a batch, one instance at a time', async () => {
    await withStore(async ({ store: a, direct, app, url }) => {
      const b = new PostgresStore(url);
      await direct.query(
        `INSERT INTO sessions (id, app_id, subject, claims, created_at, last_renewed_at, horizon_at)
         SELECT 'S' || g, $1, 'u', '{}', 1, 1, 2 FROM generate_series(1, 2500) g`, [app.id],
      );
      await direct.query(
        `INSERT INTO refresh_tokens (id, session_id, app_id, issued_at, not_before, expires_at)
         SELECT 'R' || g, 'S' || g, $1, 1, 1, 2 FROM generate_series(1, 2500) g`, [app.id],
      );
      const results = await Promise.all([a.prune(10, { revokedRetention: 0 }), b.prune(10, { revokedRetention: 0 })]);
      const again = await a.prune(10, { revokedRetention: 0 });
      expect(results.reduce((n, r) => n + r.sessions, 0) + again.sessions).toBe(2500);
      const left = await direct.query('SELECT (SELECT count(*) FROM sessions)::int AS s, (SELECT count(*) FROM refresh_tokens)::int AS r');
      expect(left.rows[0]).toEqual({ s: 0, r: 0 });
      // The lock was given back: the next round prunes again.
      await direct.query(`INSERT INTO sessions (id, app_id, subject, claims, created_at, last_renewed_at, horizon_at) VALUES ('late', $1, 'u', '{}', 1, 1, 2)`, [app.id]);
      expect((await b.prune(10, { revokedRetention: 0 })).sessions).toBe(1);
      await b.close();
    });
  });

  it('prune never waits on a row another transaction holds: it skips it, and the next round takes it', async () => {
    await withStore(async ({ store, direct: holder, app }) => {
      await holder.query(
        `INSERT INTO sessions (id, app_id, subject, claims, created_at, last_renewed_at, horizon_at)
         SELECT 'P' || g, $1, 'u', '{}', 1, 1, 2 FROM generate_series(1, 5) g`, [app.id],
      );
      await holder.query('BEGIN');
      await holder.query("SELECT 1 FROM sessions WHERE id = 'P3' FOR NO KEY UPDATE");
      const started = Date.now();
      expect((await store.prune(10, { revokedRetention: 0 })).sessions).toBe(4);
      expect(Date.now() - started).toBeLessThan(1000);
      await holder.query('COMMIT');
      expect((await store.prune(10, { revokedRetention: 0 })).sessions).toBe(1);
    }, { statementTimeoutMs: 3000 });
  });

  it('a batch never waits on a busy session: the others rotate, a subject-wide revocation meanwhile neither waits on it nor deadlocks', async () => {
    await withStore(async ({ store, direct: holder, app }) => {
      const seeded = await seedSubjects(store, app.id, ['x', 'busy', 'x', 'y', 'z']);
      const rotate = (i: number) => store.rotateSession(rotationOf(seeded[i]!, 1, Date.now()));
      // Another instance holds the busy session's row (a rotation of it, say) and has not committed.
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE', [seeded[1]!.id]);
      const all = seeded.map((_, i) => rotate(i)); // one turn: one batch
      const others = await Promise.all([0, 2, 3, 4].map((i) => all[i]!));
      expect(others).toEqual([{ rotated: true }, { rotated: true }, { rotated: true }, { rotated: true }]);
      // Subject "x" logs out everywhere while the busy session is still held: not its session, no wait.
      expect(await store.revokeSubjectSessions(app.id, 'x', 'logout_all', Date.now())).toBe(2);
      await holder.query('COMMIT');
      expect(await all[1]).toEqual({ rotated: true });
      await Promise.all([store.close(), store.close()]); // SIGTERM then SIGINT: both wait for one close
    });
  });

  it('DPoP marks commit with their rotations, and a batch never waits: not on a busy session, not on a mark another transaction is writing', async () => {
    await withStore(async ({ store, direct: holder, app }) => {
      const seeded = await seedSubjects(store, app.id, ['a', 'busy', 'b', 'c', 'contended']);
      const proof = (key: string) => ({ dpopProof: { key, expiresAt: Date.now() + 600_000 } });
      const marks = async () => (await holder.query('SELECT key FROM dpop_proofs ORDER BY key')).rows.map((r) => r.key);
      expect(await store.useDpopProof({ key: 'seen', expiresAt: Date.now() + 600_000 })).toBe(true);
      // Another transaction holds the busy session's row, and is writing the mark 'held' (as every writer does: its lock, then the row).
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE', [seeded[1]!.id]);
      await holder.query("SELECT pg_advisory_xact_lock(hashtextextended('held', 0))");
      await holder.query("INSERT INTO dpop_proofs (key, expires_at) VALUES ('held', $1)", [Date.now() + 600_000]);
      const started = Date.now();
      const all = [
        store.rotateSession({ ...rotationOf(seeded[0]!, 1, Date.now()), ...proof('mark-a') }),
        store.rotateSession({ ...rotationOf(seeded[1]!, 1, Date.now()), ...proof('mark-busy') }),
        store.rotateSession({ ...rotationOf(seeded[2]!, 1, Date.now()), ...proof('seen') }),
        store.rotateSession({ ...rotationOf(seeded[3]!, 1, Date.now()), ...proof('mark-a') }), // the same proof twice in one batch
        store.rotateSession({ ...rotationOf(seeded[4]!, 1, Date.now()), ...proof('held') }),
      ];
      expect(await Promise.all([all[0], all[2], all[3]])).toEqual([{ rotated: true }, { rotated: false, proofReplayed: true }, { rotated: false, proofReplayed: true }]);
      expect(Date.now() - started).toBeLessThan(1000); // the batch waited on neither
      // The busy session's and the contended mark's rotations wait on their own; the busy one's mark is not written yet.
      expect(await holder.query("SELECT key FROM dpop_proofs WHERE key IN ('mark-a', 'mark-busy') ORDER BY key").then((r) => r.rows.map((x) => x.key))).toEqual(['mark-a']);
      await holder.query('COMMIT');
      expect(await all[1]).toEqual({ rotated: true });
      expect(await all[4]).toEqual({ rotated: false, proofReplayed: true }); // 'held' was committed by the other writer
      expect(await marks()).toEqual(['held', 'mark-a', 'mark-busy', 'seen']);
      const generations = await holder.query('SELECT id, generation FROM sessions WHERE id = ANY ($1::text[])', [seeded.map((s) => s.id)]);
      expect(Object.fromEntries(generations.rows.map((r) => [r.id, Number(r.generation)]))).toEqual({
        [seeded[0]!.id]: 2, [seeded[1]!.id]: 2, [seeded[2]!.id]: 1, [seeded[3]!.id]: 1, [seeded[4]!.id]: 1,
      });
    });
  });

  it('a batch does not wait on the pruner: a proof whose key is an expired mark being deleted goes on its own', async () => {
    await withStore(async ({ store, direct: pruner, app }) => {
      const [a, b] = [sessionRecord(app.id, 'a'), sessionRecord(app.id, 'b')];
      for (const session of [a, b]) await store.issueSession({ session, newSubjectClaims: {} });
      await pruner.query("INSERT INTO dpop_proofs (key, expires_at) VALUES ('reused', 1)"); // long expired
      await pruner.query('BEGIN');
      await pruner.query('DELETE FROM dpop_proofs WHERE expires_at <= $1', [Date.now()]);
      const started = Date.now();
      const reused = store.rotateSession({ ...rotationOf(a, 1, Date.now()), dpopProof: { key: 'reused', expiresAt: Date.now() + 600_000 } });
      const other = store.rotateSession({ ...rotationOf(b, 1, Date.now()), dpopProof: { key: 'fresh', expiresAt: Date.now() + 600_000 } });
      expect(await other).toEqual({ rotated: true });
      expect(Date.now() - started).toBeLessThan(1000);
      await pruner.query('COMMIT');
      expect(await reused).toEqual({ rotated: true }); // the expired mark is gone: the key is fresh again
    });
  });

  it('a rotation that times out waiting for its busy session burns no proof: the same proof rotates once the session is free', async () => {
    await withStore(async ({ store, direct: holder, app }) => {
      const session = sessionRecord(app.id, 'busy');
      await store.issueSession({ session, newSubjectClaims: {} });
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE', [session.id]);
      const input = { ...rotationOf(session, 1, Date.now()), dpopProof: { key: 'patient', expiresAt: Date.now() + 600_000 } };
      await expect(store.rotateSession(input)).rejects.toBeInstanceOf(StoreUnavailableError);
      await holder.query('ROLLBACK');
      expect(await store.rotateSession(input)).toEqual({ rotated: true });
    }, { statementTimeoutMs: 300 });
  });

  it('concurrent subject-wide revocations of one subject, with logouts and rotations among them, never deadlock', async () => {
    await withStore(async ({ store, app, url }) => {
      const other = new PostgresStore(url, { poolMax: 10 });
      try {
        for (let round = 0; round < 15; round++) {
          const sessions = await seedSubjects(store, app.id, Array.from({ length: 12 }, () => `s${round}`));
          const ops = [
            store.revokeSubjectSessions(app.id, `s${round}`, 'logout_all', Date.now()),
            other.revokeSubjectSessions(app.id, `s${round}`, 'logout_all', Date.now()),
            other.revokeSubjectSessions(app.id, `s${round}`, 'logout_all', Date.now()),
            ...sessions.map((s, i) => (i % 3 === 0 ? store.revokeSession(s.id, 'logout', Date.now())
              : (i % 2 ? store : other).rotateSession(rotationOf(s, 1, Date.now())))),
          ];
          const settled = await Promise.allSettled(ops);
          expect(settled.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason?.cause?.code ?? r))).toEqual([]);
        }
      } finally {
        await other.close();
      }
    });
  });

  it('after 1,000 rotations the store has analysed its hot table, so lookups leave sequential scans behind', async () => {
    await withStore(async ({ store, direct, app }) => {
      const analysed = async () => (await direct.query(
        `SELECT count(*)::int AS n FROM pg_stat_user_tables
         WHERE schemaname = current_schema() AND relname = 'sessions' AND last_analyze IS NOT NULL`,
      )).rows[0].n as number;
      expect(await analysed()).toBe(0);
      // 100 sessions, each rotated 10 times: batches of 100, as under load.
      const sessions = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const session = sessionRecord(app.id, `u${i}`);
        await store.issueSession({ session, newSubjectClaims: {} });
        return session;
      }));
      for (let round = 1; round <= 10; round += 1) {
        const results = await Promise.all(sessions.map((session) => store.rotateSession(rotationOf(session, round, Date.now()))));
        expect(results.every((r) => r.rotated)).toBe(true);
      }
      for (let i = 0; i < 200 && (await analysed()) < 1; i += 1) await new Promise((r) => setTimeout(r, 25));
      expect(await analysed()).toBe(1);
      const plan = await direct.query(`EXPLAIN SELECT * FROM sessions s WHERE s.id = ANY ($1::text[])`, [[sessions[0]!.id]]);
      expect(plan.rows.map((row) => row['QUERY PLAN']).join('\n')).not.toMatch(/Seq Scan on sessions/);
    });
  });
  it('NUL in text is invalid_request (400), not a server fault', async () => {
    const { url, drop } = await freshSchema();
    const store = new PostgresStore(url, { poolMax: 1 });
    try {
      await store.migrate();
      const err = await store.findSubject('app', 'a\u0000b').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RotorError);
      expect((err as RotorError).code).toBe('invalid_request');
      expect((err as RotorError).status).toBe(400);
      // The one connection that saw the error stays usable, its prepared statement too.
      expect(await store.findSubject('app', 'ab')).toBeNull();
      const app = appRecord();
      await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const session = sessionRecord(app.id, 'nul\u0000subject');
      const inTx = await store.issueSession({ session, newSubjectClaims: {} }).catch((e: unknown) => e);
      expect((inTx as RotorError).code).toBe('invalid_request');
      expect(await store.findSession(session.id)).toBeNull();
      await expect(store.ping()).resolves.toBeUndefined();
    } finally {
      await store.close();
      await drop();
    }
  });

  it('a read-only database (a demoted primary, F-09) is 503 for writes; reads go on', async () => {
    const { url, drop } = await freshSchema();
    const writable = new PostgresStore(url);
    const readOnlyUrl = new URL(url);
    readOnlyUrl.searchParams.set('options', `${readOnlyUrl.searchParams.get('options')} -c default_transaction_read_only=on`);
    const readOnly = new PostgresStore(readOnlyUrl.toString());
    try {
      await writable.migrate();
      const app = appRecord();
      await writable.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      expect((await readOnly.findApp({ id: app.id }))?.name).toBe(app.name);
      const session = sessionRecord(app.id, 'alice');
      const err = await readOnly.issueSession({ session, newSubjectClaims: {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect(await writable.findSession(session.id)).toBeNull();
    } finally {
      await readOnly.close();
      await writable.close();
      await drop();
    }
  });

  it('an unreachable server is StoreUnavailableError: a closed port, and one that never answers', async () => {
    const silent = new TcpProxy('127.0.0.1', 5432);
    await silent.start();
    silent.cut('blackhole');
    const stores = [
      new PostgresStore('postgres://postgres@127.0.0.1:1/none', { connectTimeoutMs: 500 }),
      new PostgresStore(`postgres://postgres@127.0.0.1:${silent.port}/none`, { connectTimeoutMs: 500 }),
    ];
    try {
      for (const store of stores) {
        for (const operation of [() => store.ping(), () => store.migrate(), () => store.findSession('x')]) {
          const err = await operation().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(StoreUnavailableError);
          expect((err as RotorError).status).toBe(503);
          expect(String((err as Error).message)).not.toMatch(/postgres:\/\//);
        }
      }
    } finally {
      for (const store of stores) await store.close();
      await silent.close();
    }
  });

  it('server error classes map as documented', () => {
    const e = (code: string) => Object.assign(new Error('x'), { code });
    expect(classifyPgError(e('53100'))).toBe('unavailable'); // disk full
    expect(classifyPgError(e('57P01'))).toBe('unavailable'); // admin shutdown
    expect(classifyPgError(e('57014'))).toBe('unavailable'); // statement timeout
    expect(classifyPgError(e('08006'))).toBe('unavailable');
    expect(classifyPgError(e('40001'))).toBe('unavailable');
    expect(classifyPgError(e('25006'))).toBe('unavailable'); // read-only after failover
    expect(classifyPgError(e('ECONNRESET'))).toBe('unavailable');
    expect(classifyPgError(new Error('Connection terminated unexpectedly'))).toBe('unavailable');
    expect(classifyPgError(e('22021'))).toBe('invalid');
    expect(classifyPgError(e('23505'))).toBe('other');
    expect(classifyPgError(e('42601'))).toBe('other'); // a syntax error is a bug: 500
  });

  it('a statement that outlives statement_timeout is 503, and the pool goes on', async () => {
    await withStore(async ({ store, direct: locker, app }) => {
      const session = sessionRecord(app.id, 'alice');
      await store.issueSession({ session, refresh: null, newSubjectClaims: {} });
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE', [session.id]);
      const err = await store.revokeSession(session.id, 'x', 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      await locker.query('ROLLBACK');
      expect(await store.revokeSession(session.id, 'x', 1)).toBe(true);
    }, { statementTimeoutMs: 200 });
  });

  it('ROTOR_DATABASE_URL carries the pool settings; the rest goes to the driver', () => {
    const { connectionString, options } = postgresOptionsFromUrl(
      'postgres://u:p@db:5432/rotor?pool_max=20&statement_timeout_ms=3000&connect_timeout_ms=1000&prepared_statements=false&sslmode=require',
    );
    expect(options).toEqual({ poolMax: 20, statementTimeoutMs: 3000, connectTimeoutMs: 1000, preparedStatements: false });
    expect(connectionString).toBe('postgres://u:p@db:5432/rotor?sslmode=require');
    expect(() => postgresOptionsFromUrl('postgres://db/rotor?pool_max=0')).toThrow(/pool_max/);
  });
});

describe('postgres at rest', () => {
  it('stores no refresh token, access token or app key, only hashes and sealed values', async () => {
    const { url, drop } = await freshSchema();
    const server = await startTestServer({ env: { ROTOR_DATABASE_URL: url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') } });
    try {
      const app = await createApp(server, { name: 'at-rest' });
      const first = await issue(server, app);
      const renewed = await server.call('POST', '/v1/refresh', { json: { refreshToken: first.refreshToken } });
      expect(renewed.status).toBe(200);
      const secrets = [app.appKey, first.refreshToken, renewed.body.refreshToken, first.accessToken, renewed.body.accessToken];
      const schema = new URL(url).searchParams.get('options')!.split('=')[1]!;
      const tables = (await admin.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema])).rows;
      expect(tables.length).toBeGreaterThanOrEqual(6);
      let dump = '';
      for (const { table_name } of tables) {
        const rows = (await admin.query(`SELECT * FROM ${schema}.${table_name}`)).rows;
        dump += JSON.stringify(rows, (_k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v));
      }
      expect(dump).toContain(renewed.body.sessionId ?? first.sessionId);
      for (const secret of secrets) {
        expect(dump.includes(secret)).toBe(false);
        expect(dump.includes(secret.slice(-24))).toBe(false);
      }
    } finally {
      await server.close();
      await drop();
    }
  });
});
