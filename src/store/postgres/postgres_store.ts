import pg from 'pg';
import type {
  App, AppKeyRecord, Millis, RefreshRecord, Session, SigningKeyRecord, Subject, SubjectStatus,
} from '../../domain/types.js';
import { UPGRADED, type FoundLegacyRefresh, type FoundSession, type RotateInput, type Store, type SubjectColumns, type TouchInput } from '../../domain/store.js';
import { StoreUnavailableError } from '../../domain/errors.js';
import { TurnBatcher } from '../turn_batcher.js';
import { activityFromRow, clampLimit, eventFromRow, subjectListingFromRow } from '../activity_rows.js';
import type { ActivitySample, NewSecurityEventRecord, SecurityEventRecord, SubjectListing } from '../../domain/store.js';
import {
  appFromRow, appKeyFromRow, chainValues, foundSessionFromRow, MAX_GRACE_MS, RATE_WINDOWS_KEPT_MS, rateTotals, refreshFromRow,
  SESSION_CHAIN_COLUMNS, SESSION_COLUMNS_PREFIXED, sessionFromRow, signingKeyFromRow, storedRateKey, SUBJECT_INSERT_COLUMNS, subjectFromRow, subjectPatchSql,
} from '../rows.js';
import { connectionIsBroken, toStoreError } from './errors.js';
import { MIGRATION_LOCK, POSTGRES_MIGRATIONS, PRUNE_LOCK } from './schema.js';

type Row = Record<string, unknown>;

/** SQLSTATEs of a lock not obtained: deadlock_detected, lock_not_available. */
const LOCK_FAILURES = new Set(['40P01', '55P03']);
const FIND_LEGACY_SQL = `SELECT r.*, ${SESSION_COLUMNS_PREFIXED}, subj.status AS subject_status, a.keys_version
  FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id WHERE r.id = $1`;

/** The hot read: a session with its subject's status and its app's signing-key version. */
const FIND_SESSION_SQL = `SELECT s.*, subj.status AS subject_status, a.keys_version FROM sessions s
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id`;

/** The rotation's compare-and-set columns, in `rotateValues` order. */
const ROTATE_SET = `generation = $1::bigint, refresh_issued_at = $2::bigint, refresh_not_before = $3::bigint,
  refresh_expires_at = $4::bigint, successor_sealed = $5::bytea, last_renewed_at = $6::bigint,
  last_ip = COALESCE($7::text, last_ip), last_user_agent = COALESCE($8::text, last_user_agent), horizon_at = GREATEST(horizon_at, $9::bigint),
  dpop_jkt = COALESCE(dpop_jkt, $12::text)`;

const rotateValues = (input: RotateInput): unknown[] => [
  input.next.generation, input.next.issuedAt, input.next.notBefore, input.next.expiresAt, input.next.successorSealed, input.now,
  input.lastIp, input.lastUserAgent, input.horizonAt, input.sessionId, input.expectGeneration, input.bindJkt ?? null,
];

/**
 * Connection settings, chosen for a token service whose every query is a point read or a one-row
 * conditional write (see docs/production.md "Pool size, statement timeout, prepared statements").
 */
export interface PostgresStoreOptions {
  /**
   * Connections per process (default 10). A refresh holds a connection for two short round trips, so
   * ten connections carry thousands of refreshes a second; the budget that matters is
   * instances × workers × poolMax, which must stay below the server's `max_connections`.
   */
  poolMax?: number;
  /**
   * Server-side `statement_timeout` (default 5000 ms): no statement, including a wait for a row lock,
   * outlives it; the request then fails with 503 instead of piling up behind a stuck lock. The client
   * gives up 2 s later (`query_timeout`) on a connection that has gone silent.
   */
  statementTimeoutMs?: number;
  /** How long to wait for a connection, new or from the pool (default 3000 ms); then 503. */
  connectTimeoutMs?: number;
  /**
   * Named (server-side prepared) statements on the hot path (default true): parsed and planned once
   * per connection. Turn off behind a pooler in transaction mode that cannot track them
   * (PgBouncer before 1.21, or without `max_prepared_statements`).
   */
  preparedStatements?: boolean;
}

/** Store settings given as query parameters of ROTOR_DATABASE_URL (`?pool_max=20&statement_timeout_ms=3000`). */
const URL_OPTIONS = ['pool_max', 'statement_timeout_ms', 'connect_timeout_ms', 'prepared_statements'] as const;

/** Splits Rotor's own settings off a postgres:// URL; the rest of the URL goes to the driver as is. */
export function postgresOptionsFromUrl(url: string): { connectionString: string; options: PostgresStoreOptions } {
  const parsed = new URL(url);
  const take = (name: (typeof URL_OPTIONS)[number]): string | null => {
    const value = parsed.searchParams.get(name);
    parsed.searchParams.delete(name);
    return value;
  };
  const int = (name: (typeof URL_OPTIONS)[number], min: number, max: number): number | undefined => {
    const text = take(name);
    if (text === null) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new Error(`ROTOR_DATABASE_URL: ${name} must be a whole number from ${min} to ${max}`);
    }
    return value;
  };
  const options: PostgresStoreOptions = {};
  const poolMax = int('pool_max', 1, 1000);
  const statementTimeoutMs = int('statement_timeout_ms', 100, 600_000);
  const connectTimeoutMs = int('connect_timeout_ms', 100, 600_000);
  const prepared = take('prepared_statements');
  if (poolMax !== undefined) options.poolMax = poolMax;
  if (statementTimeoutMs !== undefined) options.statementTimeoutMs = statementTimeoutMs;
  if (connectTimeoutMs !== undefined) options.connectTimeoutMs = connectTimeoutMs;
  if (prepared !== null) {
    if (!['true', 'false', '1', '0'].includes(prepared)) throw new Error('ROTOR_DATABASE_URL: prepared_statements must be true or false');
    options.preparedStatements = prepared === 'true' || prepared === '1';
  }
  return { connectionString: parsed.toString(), options };
}

interface Querier {
  query(text: string, values?: unknown[], name?: string): Promise<Row[]>;
}

const noop = (): void => {};

/**
 * The races are decided under READ COMMITTED semantics: a statement that waited for a row lock
 * re-checks its condition on the newest committed version (EvalPlanQual), so the losers of a rotation
 * race simply find the parent consumed. Under REPEATABLE READ or SERIALIZABLE they would fail with
 * 40001 instead, so a server default other than READ COMMITTED is overridden — in the connection's
 * startup options, which the server applies before the first query or refuses the connection
 * (S2-17): never a fire-and-forget `SET` whose failure would leave a connection on the wrong level.
 */
function withReadCommitted(connectionString: string): string {
  const url = new URL(connectionString);
  const options = url.searchParams.get('options');
  url.searchParams.set('options', [options, '-c default_transaction_isolation=read\\ committed'].filter(Boolean).join(' '));
  return url.toString();
}

/**
 * The shared store for several instances. Every race-deciding operation decides in one conditional
 * statement (or, where a new snapshot is needed after taking a lock, in one READ COMMITTED transaction
 * whose first write takes that lock). Driver and server failures that mean "not now" become
 * `StoreUnavailableError` (503); text the database cannot store (NUL) becomes `invalid_request` (400).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly prepared: boolean;
  private readonly connectionString: string;
  private readonly connectTimeoutMs: number;

  constructor(connectionString: string, options: PostgresStoreOptions = {}) {
    const statementTimeout = options.statementTimeoutMs ?? 5000;
    this.prepared = options.preparedStatements ?? true;
    this.connectionString = connectionString;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 3000;
    this.pool = new pg.Pool({
      connectionString: withReadCommitted(connectionString),
      max: options.poolMax ?? 10,
      connectionTimeoutMillis: this.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      // Connections are renewed every 30 minutes, so after a failover or a DNS change every
      // connection soon points at the current primary, and load spreads over new backends.
      maxLifetimeSeconds: 1800,
      statement_timeout: statementTimeout,
      lock_timeout: statementTimeout,
      idle_in_transaction_session_timeout: statementTimeout * 2,
      query_timeout: statementTimeout + 2000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'rotor',
    });
    // An idle connection that breaks (server restart, network cut) is dropped by the pool; without a
    // listener the 'error' event would crash the process.
    this.pool.on('error', noop);
  }

  private async checkout(): Promise<pg.PoolClient> {
    try {
      const client = await this.pool.connect();
      client.on('error', noop); // a socket error while checked out surfaces through the running query
      return client;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  private release(client: pg.PoolClient, err?: unknown): void {
    client.removeListener('error', noop);
    client.release(err !== undefined && connectionIsBroken(err) ? (err as Error) : undefined);
  }

  private querier(client: pg.PoolClient): Querier {
    return {
      query: async (text, values, name) => {
        const config: pg.QueryConfig = { text, values: values ?? [] };
        if (name && this.prepared) config.name = name;
        return (await client.query(config)).rows as Row[];
      },
    };
  }

  /** One statement on a pooled connection (one round trip); `name` makes it a prepared statement. */
  private async one(text: string, values: unknown[] = [], name?: string): Promise<Row[]> {
    const client = await this.checkout();
    try {
      const rows = await this.querier(client).query(text, values, name);
      this.release(client);
      return rows;
    } catch (err) {
      this.release(client, err);
      throw toStoreError(err);
    }
  }

  /** A READ COMMITTED transaction: each statement sees what committed before it started. */
  private async tx<T>(work: (q: Querier) => Promise<T>): Promise<T> {
    const client = await this.checkout();
    const q = this.querier(client);
    try {
      await client.query('BEGIN');
      const result = await work(q);
      await client.query('COMMIT');
      this.release(client);
      return result;
    } catch (err) {
      let broken: unknown = connectionIsBroken(err) ? err : undefined;
      if (broken === undefined) {
        await client.query('ROLLBACK').catch((rollbackErr: unknown) => { broken = rollbackErr; });
      }
      this.release(client, broken);
      throw toStoreError(err);
    }
  }

  /**
   * Applies the pending migrations on a connection of its own, without the pool's timeouts: a
   * migration may rebuild an index on a large table, and instances starting meanwhile wait for it at
   * the advisory lock instead of failing after `statement_timeout`.
   */
  async migrate(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.connectionString, connectionTimeoutMillis: this.connectTimeoutMs, application_name: 'rotor-migrate',
    });
    client.on('error', noop);
    try {
      await client.connect();
      await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
      // Held until COMMIT: instances starting together queue here; the first applies, the rest see it done.
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      const { rows: [row] } = await client.query('SELECT COALESCE(MAX(version), 0)::int AS v FROM schema_migrations');
      const current = Number(row?.v ?? 0);
      if (current > POSTGRES_MIGRATIONS.length) {
        throw new Error(`the database schema is at version ${current}, newer than this Rotor (${POSTGRES_MIGRATIONS.length}); upgrade Rotor`);
      }
      for (const [i, migration] of POSTGRES_MIGRATIONS.slice(current).entries()) {
        await client.query(migration);
        await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [current + i + 1, Date.now()]);
      }
      await client.query('COMMIT');
    } catch (err) {
      throw toStoreError(err); // closing the connection below rolls back whatever was begun
    } finally {
      await client.end().catch(noop);
    }
  }

  async ping(): Promise<void> {
    await this.one('SELECT 1');
  }

  /** Ends the pool once; closing again is a no-op (as with SQLite). */
  /** Closing again (SIGINT after SIGTERM, say) waits for the same close. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // Calls already accepted are answered (or fail) before the pool goes.
      await Promise.all([this.rotations.drain(), this.sessionLookups.drain()]);
      await this.pool.end();
    })();
    return this.closing;
  }

  private closing: Promise<void> | null = null;

  // ── apps ───────────────────────────────────────────────────────────────────────────────────────

  async createApp(input: { app: App; appKey: AppKeyRecord; signingKey: SigningKeyRecord }): Promise<{ created: boolean }> {
    const { app, appKey: k, signingKey: s } = input;
    // One statement: the key rows are inserted only if the app row was.
    const rows = await this.one(
      `WITH a AS (
         INSERT INTO apps (id, name, profile, public, policy, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id
       ), k AS (
         INSERT INTO app_keys (id, app_id, secret_hash, created_at, revoked_at)
         SELECT $9::text, id, $10::bytea, $11::bigint, $12::bigint FROM a
       ), s AS (
         INSERT INTO signing_keys (kid, app_id, alg, state, public_jwk, private_sealed, created_at, retired_at, publish_until, revoked_at)
         SELECT $13::text, id, $14::text, $15::text, $16::text, $17::bytea, $18::bigint, $19::bigint, $20::bigint, $21::bigint FROM a
       )
       SELECT count(*)::int AS created FROM a`,
      [
        app.id, app.name, app.profile, app.public, JSON.stringify(app.policy), app.description, app.createdAt, app.updatedAt,
        k.id, k.secretHash, k.createdAt, k.revokedAt,
        s.kid, s.alg, s.state, s.publicJwk ? JSON.stringify(s.publicJwk) : null, s.privateSealed, s.createdAt, s.retiredAt,
        s.publishUntil, s.revokedAt,
      ],
    );
    return { created: Number(rows[0]?.created) === 1 };
  }

  async findApp(ref: { id?: string; name?: string }): Promise<App | null> {
    const rows = ref.id !== undefined
      ? await this.one('SELECT * FROM apps WHERE id = $1', [ref.id], 'rotor_app_by_id')
      : await this.one('SELECT * FROM apps WHERE name = $1', [ref.name ?? ''], 'rotor_app_by_name');
    return rows[0] ? appFromRow(rows[0]) : null;
  }

  async listApps(): Promise<App[]> {
    return (await this.one('SELECT * FROM apps ORDER BY name')).map(appFromRow);
  }

  async updateApp(app: App, expectUpdatedAt: Millis): Promise<{ updated: true } | { updated: false; reason: 'stale' | 'name_taken' }> {
    try {
      // The compare-and-set: a concurrent update holding the row makes this wait, then re-check
      // `updated_at` on the version it committed (READ COMMITTED), so of two writers that read the same
      // row only the first writes; the second is told `stale`.
      const rows = await this.one(
        'UPDATE apps SET name = $1, public = $2, policy = $3, description = $4, updated_at = $5 WHERE id = $6 AND updated_at = $7 RETURNING id',
        [app.name, app.public, JSON.stringify(app.policy), app.description, app.updatedAt, app.id, expectUpdatedAt],
      );
      return rows.length === 1 ? { updated: true as const } : { updated: false as const, reason: 'stale' as const };
    } catch (err) {
      if ((err as { code?: string }).code === '23505') return { updated: false as const, reason: 'name_taken' as const };
      throw err;
    }
  }

  async deleteApp(appId: string): Promise<boolean> {
    return (await this.one('DELETE FROM apps WHERE id = $1 RETURNING id', [appId])).length === 1;
  }

  // ── app keys ───────────────────────────────────────────────────────────────────────────────────

  async createAppKey(key: AppKeyRecord): Promise<void> {
    await this.one(
      'INSERT INTO app_keys (id, app_id, secret_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)',
      [key.id, key.appId, key.secretHash, key.createdAt, key.revokedAt],
    );
  }

  async findAppKey(id: string): Promise<AppKeyRecord | null> {
    const rows = await this.one('SELECT * FROM app_keys WHERE id = $1', [id], 'rotor_app_key');
    return rows[0] ? appKeyFromRow(rows[0]) : null;
  }

  async listAppKeys(appId: string): Promise<AppKeyRecord[]> {
    return (await this.one('SELECT * FROM app_keys WHERE app_id = $1 ORDER BY id', [appId])).map(appKeyFromRow);
  }

  async revokeAppKey(appId: string, id: string, now: Millis): Promise<boolean> {
    const rows = await this.one(
      'UPDATE app_keys SET revoked_at = $1 WHERE app_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING id', [now, appId, id],
    );
    return rows.length === 1;
  }

  // ── signing keys ───────────────────────────────────────────────────────────────────────────────

  async listSigningKeys(appId: string): Promise<SigningKeyRecord[]> {
    return (await this.one('SELECT * FROM signing_keys WHERE app_id = $1 ORDER BY kid', [appId])).map(signingKeyFromRow);
  }

  async findSigningKey(kid: string): Promise<SigningKeyRecord | null> {
    const rows = await this.one('SELECT * FROM signing_keys WHERE kid = $1', [kid], 'rotor_signing_key');
    return rows[0] ? signingKeyFromRow(rows[0]) : null;
  }

  async listPublishedSigningKeys(now: Millis): Promise<SigningKeyRecord[]> {
    return (await this.one(
      `SELECT * FROM signing_keys WHERE state = 'active' OR (state = 'retiring' AND publish_until > $1) ORDER BY app_id, kid`,
      [now], 'rotor_published_keys',
    )).map(signingKeyFromRow);
  }

  async rotateSigningKey(input: {
    appId: string; expectActiveKid: string | null; next: SigningKeyRecord; now: Millis; publishUntil: Millis;
  }): Promise<{ rotated: boolean }> {
    const n = input.next;
    // One statement. With an expected key: retire it only if it is still the active one (the UPDATE
    // locks the row, so a concurrent rotation waits, re-reads `state`, and retires nothing), and insert
    // the new key only if that happened. With none expected: insert only if the app has no active key;
    // two such inserts meet at the one-active-key unique index, where ON CONFLICT lets the second lose.
    const rows = await this.one(
      `WITH old AS (
         UPDATE signing_keys SET state = 'retiring', retired_at = $3, publish_until = $4
         WHERE app_id = $1 AND kid = $2 AND state = 'active'
         RETURNING kid
       ), ins AS (
         INSERT INTO signing_keys (kid, app_id, alg, state, public_jwk, private_sealed, created_at, retired_at, publish_until, revoked_at)
         SELECT $5::text, $1::text, $6::text, $7::text, $8::text, $9::bytea, $10::bigint, $11::bigint, $12::bigint, $13::bigint
         WHERE CASE WHEN $2::text IS NULL
                    THEN NOT EXISTS (SELECT 1 FROM signing_keys WHERE app_id = $1 AND state = 'active')
                    ELSE EXISTS (SELECT 1 FROM old) END
         ON CONFLICT (app_id) WHERE state = 'active' DO NOTHING
         RETURNING kid
       ), bump AS (
         UPDATE apps SET keys_version = keys_version + 1 WHERE id = $1 AND EXISTS (SELECT 1 FROM ins) RETURNING id
       )
       SELECT count(*)::int AS rotated FROM ins, (SELECT count(*) FROM bump) b`,
      [
        input.appId, input.expectActiveKid, input.now, input.publishUntil,
        n.kid, n.alg, n.state, n.publicJwk ? JSON.stringify(n.publicJwk) : null, n.privateSealed, n.createdAt, n.retiredAt,
        n.publishUntil, n.revokedAt,
      ],
    );
    return { rotated: Number(rows[0]?.rotated) === 1 };
  }

  async revokeSigningKey(appId: string, kid: string, now: Millis): Promise<boolean> {
    // One statement, so the revocation and the version bump (S2-13) commit together.
    const rows = await this.one(
      `WITH revoked AS (
         UPDATE signing_keys SET state = 'revoked', revoked_at = $1 WHERE app_id = $2 AND kid = $3 AND state != 'revoked' RETURNING kid
       ), bump AS (
         UPDATE apps SET keys_version = keys_version + 1 WHERE id = $2 AND EXISTS (SELECT 1 FROM revoked) RETURNING id
       )
       SELECT kid FROM revoked, (SELECT count(*) FROM bump) b`,
      [now, appId, kid],
    );
    return rows.length === 1;
  }

  async signingKeysVersion(appId: string): Promise<number> {
    const [row] = await this.one('SELECT keys_version FROM apps WHERE id = $1', [appId], 'rotor_keys_version');
    return Number(row?.keys_version ?? 0);
  }

  // ── subjects ───────────────────────────────────────────────────────────────────────────────────

  async findSubject(appId: string, subject: string): Promise<Subject | null> {
    const rows = await this.one('SELECT * FROM subjects WHERE app_id = $1 AND subject = $2', [appId, subject], 'rotor_subject');
    return rows[0] ? subjectFromRow(rows[0]) : null;
  }

  /**
   * One READ COMMITTED transaction. The existing row is locked first (FOR NO KEY UPDATE: it waits for
   * issuances holding it FOR SHARE and for other patches, and returns the newest committed status),
   * then only the named columns are updated; a new subject is inserted, and should another transaction
   * insert it first, that row is locked and updated instead. The revocation that follows is a new
   * statement, so it sees every session committed before the lock was granted.
   */
  async patchSubject(input: { appId: string; subject: string; set: SubjectColumns; now: Millis }): Promise<{
    subject: Subject; previousStatus: SubjectStatus | null;
  }> {
    const { appId, subject, set, now } = input;
    const patch = subjectPatchSql(appId, subject, set, now);
    const assignments = [...patch.assignments.map((a, i) => `${a.column} = $${i + 3}`), `updated_at = $${patch.assignments.length + 3}`];
    return this.tx(async (q) => {
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const [before] = await q.query('SELECT status FROM subjects WHERE app_id = $1 AND subject = $2 FOR NO KEY UPDATE', [appId, subject]);
        const [row] = before
          ? await q.query(
            `UPDATE subjects SET ${assignments.join(', ')} WHERE app_id = $1 AND subject = $2 RETURNING *`,
            [appId, subject, ...patch.assignments.map((a) => a.value), now],
          )
          : await q.query(
            `INSERT INTO subjects (${SUBJECT_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (app_id, subject) DO NOTHING RETURNING *`,
            patch.insert,
          );
        if (!row) continue; // created by another transaction meanwhile: lock and update that row
        const stored = subjectFromRow(row);
        if (stored.status === 'disabled') await revokeSubjectSessionsIn(q, appId, subject, 'subject_disabled', now);
        return { subject: stored, previousStatus: before ? (before.status as SubjectStatus) : null };
      }
      // Created and deleted again by others, five times over while this waited: not now.
      throw new StoreUnavailableError(new Error('the subject kept being created and deleted concurrently'));
    });
  }

  async deleteSubject(appId: string, subject: string, now: Millis): Promise<boolean> {
    // Delete first (taking the row lock), then revoke in a fresh statement: see patchSubject.
    return this.tx(async (q) => {
      const deleted = await q.query('DELETE FROM subjects WHERE app_id = $1 AND subject = $2 RETURNING subject', [appId, subject]);
      await revokeSubjectSessionsIn(q, appId, subject, 'subject_deleted', now);
      return deleted.length === 1;
    });
  }

  // ── sessions ───────────────────────────────────────────────────────────────────────────────────

  async issueSession(input: {
    session: Session; newSubjectClaims: Record<string, unknown>; revokeOthers?: string;
  }): Promise<{ issued: true; subject: Subject } | { issued: false; reason: 'subject_disabled' }> {
    const s = input.session;
    return this.tx(async (q) => {
      // Create the subject if it is new (a concurrent creator makes this wait, then do nothing) and
      // lock it: FOR SHARE lets issuances run side by side while a disable/delete (which updates the
      // row) waits for them and then revokes what they created. Renew-and-revoke takes the stronger
      // lock, so two of them for one subject run one after the other and the second revokes the first.
      await q.query(
        `INSERT INTO subjects (app_id, subject, claims, status, created_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $4)
         ON CONFLICT (app_id, subject) DO NOTHING`,
        [s.appId, s.subject, JSON.stringify(input.newSubjectClaims), s.createdAt], 'rotor_subject_create',
      );
      const [row] = input.revokeOthers
        ? await q.query('SELECT * FROM subjects WHERE app_id = $1 AND subject = $2 FOR NO KEY UPDATE', [s.appId, s.subject], 'rotor_subject_lock')
        : await q.query('SELECT * FROM subjects WHERE app_id = $1 AND subject = $2 FOR SHARE', [s.appId, s.subject], 'rotor_subject_share');
      if (!row) throw new Error('the subject vanished while it was locked'); // unreachable: created above
      const subject = subjectFromRow(row);
      if (subject.status !== 'active') return { issued: false as const, reason: 'subject_disabled' as const };
      if (input.revokeOthers) await revokeSubjectSessionsIn(q, s.appId, s.subject, input.revokeOthers, s.createdAt);
      await q.query(
        `INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
           last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at, locator, dpop_jkt, ${SESSION_CHAIN_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
        [
          s.id, s.appId, s.subject, JSON.stringify(s.claims), s.audience, s.createdAt, s.lastRenewedAt, s.expiresAt, s.ip,
          s.userAgent, s.lastIp, s.lastUserAgent, s.revokedAt, s.revokeReason, s.horizonAt, s.locator, s.dpopJkt, ...chainValues(s.refresh),
        ],
        'rotor_session_insert',
      );
      return { issued: true as const, subject };
    });
  }

  /** Lookups of one event-loop turn go to the server as one statement (see TurnBatcher). */
  findSession(id: string): Promise<FoundSession | null> {
    return this.sessionLookups.submit(id);
  }

  private readonly sessionLookups = new TurnBatcher<string, FoundSession | null>(
    async (ids) => {
      const rows = await this.one(`${FIND_SESSION_SQL} WHERE s.id = ANY ($1::text[])`, [ids], 'rotor_find_sessions');
      const found = new Map(rows.map((row) => [String(row.id), foundSessionFromRow(row)]));
      return ids.map((id) => found.get(id) ?? null);
    },
    async (id) => foundSessionFromRow((await this.one(`${FIND_SESSION_SQL} WHERE s.id = $1`, [id], 'rotor_find_session'))[0]),
    (err) => err instanceof StoreUnavailableError,
  );

  async useDpopProof(input: { key: string; expiresAt: Millis }): Promise<boolean> {
    const rows = await this.one(
      'INSERT INTO dpop_proofs (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key',
      [input.key, input.expiresAt], 'rotor_dpop_proof',
    );
    return rows.length === 1;
  }

  async findSessionByLocator(locator: string): Promise<FoundSession | null> {
    return foundSessionFromRow((await this.one(`${FIND_SESSION_SQL} WHERE s.locator = $1`, [locator], 'rotor_find_session_locator'))[0]);
  }

  async listSessions(appId: string, subject: string): Promise<Session[]> {
    return (await this.one('SELECT * FROM sessions WHERE app_id = $1 AND subject = $2 ORDER BY id DESC', [appId, subject]))
      .map((row) => sessionFromRow(row));
  }

  async revokeSession(sessionId: string, reason: string, now: Millis): Promise<boolean> {
    const rows = await this.one(
      'UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL RETURNING id',
      [now, reason, sessionId], 'rotor_revoke_session',
    );
    return rows.length === 1;
  }

  async revokeSubjectSessions(appId: string, subject: string, reason: string, now: Millis): Promise<number> {
    const client = await this.checkout();
    try {
      const count = await revokeSubjectSessionsIn(this.querier(client), appId, subject, reason, now);
      this.release(client);
      return count;
    } catch (err) {
      this.release(client, err);
      throw toStoreError(err);
    }
  }

  async touchSession(input: TouchInput): Promise<boolean> {
    const rows = await this.one(
      `UPDATE sessions SET last_renewed_at = $1, last_ip = COALESCE($2, last_ip), last_user_agent = COALESCE($3, last_user_agent),
         horizon_at = GREATEST(horizon_at, $4) WHERE id = $5 AND revoked_at IS NULL RETURNING id`,
      [input.now, input.lastIp, input.lastUserAgent, input.horizonAt, input.sessionId], 'rotor_touch_session',
    );
    return rows.length === 1;
  }

  // ── refresh tokens ─────────────────────────────────────────────────────────────────────────────

  async findLiveLegacyRefresh(sessionId: string): Promise<RefreshRecord | null> {
    const [row] = await this.one(
      `SELECT r.* FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
       WHERE r.session_id = $1 AND r.consumed_at IS NULL AND s.generation = 0 ORDER BY r.issued_at DESC LIMIT 1`,
      [sessionId], 'rotor_find_live_legacy',
    );
    return row ? refreshFromRow(row) : null;
  }

  async findLegacyRefresh(id: string): Promise<FoundLegacyRefresh | null> {
    const [row] = await this.one(FIND_LEGACY_SQL, [id], 'rotor_find_legacy');
    if (!row) return null;
    return { ...(foundSessionFromRow(row, 's_') as FoundSession), record: refreshFromRow(row) };
  }

  /**
   * Both writes in one statement, so both or neither: the record is consumed only if the session moved
   * from no chain (generation 0) to its first generation in the same step.
   */
  async upgradeLegacy(input: { legacyId: string; locator: string | null } & RotateInput): Promise<{ rotated: boolean }> {
    const rows = await this.one(
      `WITH chain AS (
         UPDATE sessions SET ${ROTATE_SET}, locator = COALESCE(locator, $15::text)
         WHERE id = $10 AND generation = $11::bigint AND revoked_at IS NULL
           AND EXISTS (SELECT 1 FROM refresh_tokens WHERE id = $13 AND session_id = $10 AND consumed_at IS NULL)
         RETURNING id
       )
       UPDATE refresh_tokens SET consumed_at = $6::bigint, successor_id = $14
       WHERE id = $13 AND consumed_at IS NULL AND session_id IN (SELECT id FROM chain) RETURNING id`,
      [...rotateValues(input), input.legacyId, UPGRADED, input.locator],
      'rotor_upgrade_legacy',
    );
    return { rotated: rows.length === 1 };
  }

  /**
   * Group commit (see TurnBatcher): the rotations of one event-loop turn go to the server as one
   * statement, `rotateMany`, so they share one round trip and one commit (one WAL flush).
   */
  rotateSession(input: RotateInput): Promise<{ rotated: boolean }> {
    this.countRotation();
    return this.rotations.submit(input);
  }

  /**
   * Cached generic plans are built from the statistics of the moment: on a new database, with a few
   * hundred rows, they scan `sessions` sequentially and keep doing so as the table
   * grow (measured: 2,800 -> 5,300 refresh/s after one ANALYZE at 10,000 tokens). Autovacuum would
   * ANALYZE eventually, if it is on; Rotor does not wait for it: after 1,000, 10,000, 100,000, ...
   * rotations in this process it analyses its hot table, which also invalidates the cached plans.
   */
  private countRotation(): void {
    this.rotationCount += 1;
    if (this.rotationCount < this.nextAnalyzeAt) return;
    this.nextAnalyzeAt *= 10;
    this.one('ANALYZE sessions').catch(noop);
  }

  private rotationCount = 0;
  private nextAnalyzeAt = 1000;

  private readonly rotations = new TurnBatcher<RotateInput, { rotated: boolean }>(
    (inputs) => this.rotateMany(inputs),
    (input) => this.rotateOne(input),
    // A lock that could not be had (deadlock, lock_timeout) concerns some inputs only: retried one by one.
    (err) => err instanceof StoreUnavailableError && !LOCK_FAILURES.has(String((err.cause as { code?: unknown } | undefined)?.code)),
  );

  /**
   * The rotation: ONE conditional UPDATE of the session's row (SPEC §2.9). Of any number of concurrent
   * rotations of one generation exactly one finds `generation = expected`; the others wait for its row
   * lock, re-check the newest row version (READ COMMITTED) and update nothing. A revocation is an UPDATE
   * of the same row, so the two serialise on it: a rotation never commits after a revocation it did not
   * see, and a revocation that waited revokes the session with its new generation.
   */
  private async rotateOne(input: RotateInput): Promise<{ rotated: boolean }> {
    const rows = await this.one(
      `UPDATE sessions SET ${ROTATE_SET} WHERE id = $10 AND generation = $11::bigint AND revoked_at IS NULL RETURNING id`,
      rotateValues(input), 'rotor_rotate_session',
    );
    return { rotated: rows.length === 1 };
  }

  /**
   * The same compare-and-set as `rotateOne` for many inputs in one statement. The batch never waits for
   * a session lock (SKIP LOCKED): a session another transaction holds (a rotation elsewhere, a
   * revocation) is left out and its input goes through `rotateOne`, which waits and re-checks. So a
   * batch cannot join a lock cycle, and one busy session cannot hold up the unrelated rotations beside
   * it. Two inputs naming one session join the same row: PostgreSQL updates it once, with one of them,
   * and RETURNING names that one, the winner; the other gets `rotated: false`, as its own statement
   * would have after waiting.
   */
  private async rotateMany(inputs: RotateInput[]): Promise<({ rotated: boolean } | Promise<{ rotated: boolean }>)[]> {
    const column = <T>(pick: (input: RotateInput) => T): T[] => inputs.map(pick);
    const rows = await this.one(
      `WITH input AS (
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bytea[],
           $8::bigint[], $9::text[], $10::text[], $11::bigint[], $12::text[]) WITH ORDINALITY
           AS i(session_id, expect, generation, issued_at, not_before, expires_at, sealed, now, last_ip, last_user_agent, horizon, bind_jkt, n)
       ), locked AS MATERIALIZED (
         SELECT s.id FROM sessions s WHERE s.id = ANY ($1::text[]) FOR NO KEY UPDATE SKIP LOCKED
       ), rotated AS (
         UPDATE sessions s SET generation = i.generation, refresh_issued_at = i.issued_at, refresh_not_before = i.not_before,
           refresh_expires_at = i.expires_at, successor_sealed = i.sealed, last_renewed_at = i.now,
           last_ip = COALESCE(i.last_ip, s.last_ip), last_user_agent = COALESCE(i.last_user_agent, s.last_user_agent),
           horizon_at = GREATEST(s.horizon_at, i.horizon), dpop_jkt = COALESCE(s.dpop_jkt, i.bind_jkt)
         FROM input i
         WHERE s.id = i.session_id AND s.id IN (SELECT id FROM locked) AND s.generation = i.expect AND s.revoked_at IS NULL
         RETURNING i.n
       )
       SELECT i.n::int AS n, i.n IN (SELECT n FROM rotated) AS rotated, i.session_id IN (SELECT id FROM locked) AS locked
       FROM input i`,
      [
        column((x) => x.sessionId), column((x) => x.expectGeneration), column((x) => x.next.generation), column((x) => x.next.issuedAt),
        column((x) => x.next.notBefore), column((x) => x.next.expiresAt), column((x) => x.next.successorSealed), column((x) => x.now),
        column((x) => x.lastIp), column((x) => x.lastUserAgent), column((x) => x.horizonAt), column((x) => x.bindJkt ?? null),
      ],
      'rotor_rotate_sessions',
    );
    const outcomes = new Map(rows.map((row) => [Number(row.n), { rotated: row.rotated === true, locked: row.locked === true }]));
    // Not locked: its session was busy (or unknown): decided on its own, and its failure is its own
    // (the batch has committed; see TurnBatcher).
    return inputs.map((input, i) => {
      const outcome = outcomes.get(i + 1);
      return outcome?.locked ? { rotated: outcome.rotated } : this.rotateOne(input);
    });
  }

  /**
   * Adds this instance's hits and returns the window's totals of every instance. Keys are stored as
   * JSON strings (so a NUL or a lone surrogate in a login name cannot fail the statement), hashed when
   * long (index entries are bounded); upserted in key order, so concurrent instances lock rows in the
   * same order and cannot deadlock.
   */
  async addRateHits(input: { windowStart: Millis; hits: { key: string; count: number }[] }): Promise<Map<string, number>> {
    const original = new Map<string, string>();
    const stored = input.hits.map(({ key, count }) => {
      const s = storedRateKey(key);
      original.set(s, key);
      return { key: s, count };
    }).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const rows = await this.one(
      `WITH up AS (
         INSERT INTO rate_hits (window_start, key, count)
         SELECT $1::bigint, k, c FROM unnest($2::text[], $3::bigint[]) AS t(k, c) ORDER BY k
         ON CONFLICT (window_start, key) DO UPDATE SET count = rate_hits.count + excluded.count
         RETURNING key, count
       )
       SELECT key, count FROM up
       UNION ALL
       SELECT key, count FROM rate_hits WHERE window_start = $1 AND key NOT IN (SELECT key FROM up)`,
      [input.windowStart, stored.map((h) => h.key), stored.map((h) => h.count)],
      'rotor_rate_hits',
    );
    return rateTotals(rows, original);
  }

  /**
   * One instance prunes at a time (the others skip the round), in batches of short statements, so a
   * large backlog (after downtime, or a first run) never holds locks long or runs into the statement
   * timeout, and each batch commits on its own.
   */
  async prune(now: Millis, options: { revokedRetention: number }): Promise<{ refreshTokens: number; sessions: number }> {
    const client = await this.checkout();
    const q = this.querier(client);
    const cutoff = now - options.revokedRetention;
    const batches = async (text: string, values: unknown[]): Promise<number> => {
      let total = 0;
      for (;;) {
        const [row] = await q.query(text, values);
        const n = Number(row?.n ?? 0);
        total += n;
        if (n < PRUNE_BATCH) return total;
      }
    };
    let failure: unknown;
    let locked = false;
    try {
      const [lock] = await q.query('SELECT pg_try_advisory_lock($1) AS locked', [PRUNE_LOCK]);
      locked = lock?.locked === true;
      if (!locked) return { refreshTokens: 0, sessions: 0 };
      // Sessions first (their tokens go with them), then tokens: the lock order of a rotation.
      const sessions = await batches(
        `WITH d AS (DELETE FROM sessions WHERE id IN (
           SELECT id FROM sessions WHERE horizon_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1) LIMIT ${PRUNE_BATCH}
         ) RETURNING 1) SELECT count(*)::int AS n FROM d`,
        [cutoff],
      );
      const refreshTokens = await batches(
        `WITH d AS (DELETE FROM refresh_tokens WHERE id IN (
           SELECT id FROM refresh_tokens WHERE expires_at <= $1 LIMIT ${PRUNE_BATCH}
         ) RETURNING 1) SELECT count(*)::int AS n FROM d`,
        [now],
      );
      await batches(
        `WITH u AS (UPDATE refresh_tokens SET successor_sealed = NULL WHERE id IN (
           SELECT id FROM refresh_tokens WHERE successor_sealed IS NOT NULL AND consumed_at < $1 LIMIT ${PRUNE_BATCH}
         ) RETURNING 1) SELECT count(*)::int AS n FROM u`,
        [now - MAX_GRACE_MS],
      );
      // A live token's seal is only needed while its parent may still retry.
      await batches(
        `WITH u AS (UPDATE sessions SET successor_sealed = NULL WHERE id IN (
           SELECT id FROM sessions WHERE successor_sealed IS NOT NULL AND refresh_issued_at < $1 LIMIT ${PRUNE_BATCH}
         ) RETURNING 1) SELECT count(*)::int AS n FROM u`,
        [now - MAX_GRACE_MS],
      );
      await q.query('DELETE FROM rate_hits WHERE window_start < $1', [now - RATE_WINDOWS_KEPT_MS]);
      await q.query('DELETE FROM dpop_proofs WHERE expires_at <= $1', [now]);
      await q.query('SELECT pg_advisory_unlock($1)', [PRUNE_LOCK]);
      locked = false;
      return { refreshTokens, sessions };
    } catch (err) {
      failure = err;
      throw toStoreError(err);
    } finally {
      // A connection that still holds the session-level lock is closed, which releases it.
      this.release(client, locked ? new Error('prune interrupted while holding its lock') : failure);
    }
  }

  // ── listings, security events, activity samples ───────────────────────────────────────────────

  async listSubjects(appId: string, page: { after: string | null; limit: number; now: Millis }): Promise<SubjectListing[]> {
    const rows = await this.one(
      `SELECT subj.*, (SELECT count(*)::int FROM sessions s WHERE s.app_id = subj.app_id AND s.subject = subj.subject
          AND s.revoked_at IS NULL AND s.horizon_at > $1) AS live_sessions
       FROM subjects subj WHERE subj.app_id = $2 AND subj.subject > $3 ORDER BY subj.subject LIMIT $4`,
      [page.now, appId, page.after ?? '', clampLimit(page.limit)],
    );
    return rows.map(subjectListingFromRow);
  }

  async listAppSessions(appId: string, page: { subject: string | null; before: string | null; limit: number }): Promise<Session[]> {
    const rows = await this.one(
      `SELECT * FROM sessions WHERE app_id = $1 AND ($2::text IS NULL OR subject = $2) AND ($3::text IS NULL OR id < $3)
       ORDER BY id DESC LIMIT $4`,
      [appId, page.subject, page.before, clampLimit(page.limit)],
    );
    return rows.map((row) => sessionFromRow(row));
  }

  async appendEvent(event: NewSecurityEventRecord): Promise<void> {
    await this.one('INSERT INTO security_events (at, event, app_id, fields) VALUES ($1, $2, $3, $4)',
      [event.at, event.event, event.appId, JSON.stringify(event.fields)], 'rotor_append_event');
  }

  async listEvents(query: { afterId: number | null; sinceAt: Millis | null; limit: number }): Promise<SecurityEventRecord[]> {
    const limit = clampLimit(query.limit);
    if (query.afterId === null && query.sinceAt === null) {
      const newest = await this.one('SELECT * FROM security_events ORDER BY id DESC LIMIT $1', [limit]);
      return newest.reverse().map(eventFromRow);
    }
    return (await this.one('SELECT * FROM security_events WHERE id > $1 AND at >= $2 ORDER BY id LIMIT $3',
      [query.afterId ?? 0, query.sinceAt ?? 0, limit])).map(eventFromRow);
  }

  async recordActivity(sample: ActivitySample): Promise<void> {
    await this.one(
      'INSERT INTO activity_samples (at, instance, data) VALUES ($1, $2, $3) ON CONFLICT (at, instance) DO UPDATE SET data = excluded.data',
      [sample.at, sample.instance, JSON.stringify(sample.data)],
    );
  }

  async listActivity(since: Millis): Promise<ActivitySample[]> {
    return (await this.one('SELECT * FROM activity_samples WHERE at >= $1 ORDER BY at, instance', [since])).map(activityFromRow);
  }

  async pruneActivity(input: { eventsBefore: Millis; samplesBefore: Millis }): Promise<{ events: number; samples: number }> {
    const [row] = await this.one(
      `WITH e AS (DELETE FROM security_events WHERE at < $1 RETURNING 1), a AS (DELETE FROM activity_samples WHERE at < $2 RETURNING 1)
       SELECT (SELECT count(*)::int FROM e) AS events, (SELECT count(*)::int FROM a) AS samples`,
      [input.eventsBefore, input.samplesBefore],
    );
    return { events: Number(row?.events ?? 0), samples: Number(row?.samples ?? 0) };
  }
}

/** Rows per pruning statement. */
const PRUNE_BATCH = 1000;

async function revokeSubjectSessionsIn(q: Querier, appId: string, subject: string, reason: string, now: Millis): Promise<number> {
  const rows = await q.query(
    `WITH r AS (
       UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE app_id = $3 AND subject = $4 AND revoked_at IS NULL RETURNING 1
     ) SELECT count(*)::int AS n FROM r`,
    [now, reason, appId, subject], 'rotor_revoke_subject_sessions',
  );
  return Number(rows[0]?.n ?? 0);
}
