import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { StoreUnavailableError } from '../../domain/errors.js';
import type {
  App, AppKeyRecord, Millis, RefreshRecord, Session, SigningKeyRecord, Subject, SubjectStatus,
} from '../../domain/types.js';
import { UPGRADED, type FoundLegacyRefresh, type FoundSession, type RotateInput, type Store, type SubjectColumns, type TouchInput } from '../contract.js';
import type { ActivitySample, NewSecurityEventRecord, SecurityEventRecord, SubjectListing } from '../contract.js';
import {
  appFromRow, appKeyFromRow, chainValues, foundSessionFromRow, MAX_GRACE_MS, RATE_WINDOWS_KEPT_MS, rateTotals, storedRateKey, refreshFromRow,
  SESSION_CHAIN_COLUMNS, SESSION_COLUMNS_PREFIXED, sessionFromRow,
  signingKeyFromRow, SUBJECT_INSERT_COLUMNS, subjectFromRow, subjectPatchSql,
} from '../rows.js';
import { TurnBatcher } from '../turn_batcher.js';
import { activityFromRow, clampLimit, eventFromRow, subjectListingFromRow } from '../activity_rows.js';
import { createPrivateFile, makePrivateDir } from './file_modes.js';
import { SQLITE_MIGRATIONS } from './schema.js';

type Row = Record<string, unknown>;

/** Unwinds a transaction whose second write lost: nothing of it is kept. */
class LostRace extends Error {}

/** Built once: the statement cache is keyed by the SQL text, so the hot path must not rebuild it. */
const FIND_LEGACY_SQL = `SELECT r.*, ${SESSION_COLUMNS_PREFIXED}, subj.status AS subject_status, a.keys_version
  FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id
  WHERE r.id = ?`;

/** The hot read: a session with its subject's status and its app's signing-key version, by id or locator. */
const findSessionSql = (by: 'id' | 'locator') => `SELECT s.*, subj.status AS subject_status, a.keys_version FROM sessions s
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id WHERE s.${by} = ?`;
const FIND_SESSION_SQL = findSessionSql('id');
const FIND_SESSION_BY_LOCATOR_SQL = findSessionSql('locator');

/** The rotation's one conditional write (SPEC §2.9): the generation is the compare-and-set. */
const ROTATE_SQL = `UPDATE sessions SET generation = ?, refresh_issued_at = ?, refresh_not_before = ?, refresh_expires_at = ?,
    successor_sealed = ?, last_renewed_at = ?, last_ip = COALESCE(?, last_ip), last_user_agent = COALESCE(?, last_user_agent),
    horizon_at = MAX(horizon_at, ?), dpop_jkt = COALESCE(dpop_jkt, ?)
  WHERE id = ? AND generation = ? AND revoked_at IS NULL`;

/** Above every session id (ULIDs are digits and upper-case letters): `listAppSessions` from the newest. */
const NEWEST = '~';

/** SQLite errors that mean "the database cannot take this now" rather than a bug: answered with 503. */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|CORRUPT|NOTADB|PROTOCOL|PERM)/;

function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE.test(code);
}

/**
 * WAL checkpoints off the event loop. A checkpoint copies pages from the WAL into the database file
 * and fsyncs both; SQLite's automatic one runs inside whichever COMMIT crosses 1,000 WAL pages, i.e. on
 * the event loop, stalling every request in flight. Once a store has seen sustained writes, a worker
 * thread with its own connection (same `synchronous`, so the same durability) runs PASSIVE checkpoints
 * every 10 ms while frames keep arriving; they never block writers. A write that finds the whole WAL
 * copied restarts it from its beginning, so under load the WAL stays at a few hundred pages. The main
 * connection's automatic checkpoint stays on at a higher mark, a backstop should the worker fall behind.
 * Commits, their durability and their order are exactly as before.
 */
const CHECKPOINTER_AFTER_WRITES = 500;
const CHECKPOINT_EVERY_MS = 10;
/** When no frame was added since the last pass. */
const CHECKPOINT_IDLE_MS = 200;
const MAIN_AUTOCHECKPOINT_PAGES = 4000;
const CHECKPOINTER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('synchronous = ' + workerData.synchronous);
let timer;
let lastLog = -1;
const pass = () => {
  let idle = false;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    // Idle only when no frame was added since the last pass: being caught up is the normal state
    // under load, and waiting the idle interval then lets the WAL grow for 200 ms at a time.
    idle = r.log === r.checkpointed && r.log === lastLog;
    lastLog = r.log;
  } catch { /* the main connection reports real trouble */ }
  timer = setTimeout(pass, idle ? workerData.idleMs : workerData.everyMs);
};
pass();
parentPort.on('message', () => {
  clearTimeout(timer);
  try { db.close(); } catch { /* closing anyway */ }
  parentPort.close();
});
`;

export interface SqliteStoreOptions {
  /** `synchronous` pragma: NORMAL survives process crashes in WAL mode; FULL also survives power loss. */
  synchronous?: 'NORMAL' | 'FULL';
  busyTimeoutMs?: number;
}

/**
 * The embedded store. better-sqlite3 is synchronous, so each operation runs to completion on the event
 * loop; writes that decide races run in `BEGIN IMMEDIATE` transactions, which also serialise them
 * against other processes sharing the file (WAL mode, busy timeout).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly rotations: TurnBatcher<RotateInput, { rotated: boolean }>;
  private readonly touches: TurnBatcher<TouchInput, boolean>;
  private readonly dpopProofs: TurnBatcher<{ key: string; expiresAt: Millis }, boolean>;
  private readonly path: string;
  private readonly synchronous: 'NORMAL' | 'FULL';
  private writes = 0;
  private checkpointer: Worker | null = null;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    if (path !== ':memory:') {
      // S2-07: a new data directory 0700 and a new database 0600 (its -wal and -shm follow), whatever the umask.
      makePrivateDir(dirname(path));
      createPrivateFile(path);
    }
    this.path = path;
    this.synchronous = options.synchronous ?? 'NORMAL';
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${this.synchronous}`);
    this.db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    this.db.pragma('foreign_keys = ON');
    this.rotations = this.groupCommitted((input: RotateInput) => ({ rotated: this.rotateOne(input) }));
    this.touches = this.groupCommitted((input: TouchInput) => this.touchOne(input));
    // DPoP's replay cache is written on every proven refresh: its inserts share a turn's COMMIT too, each
    // still its own conditional INSERT deciding, in arrival order, which caller used a proof first.
    this.dpopProofs = this.groupCommitted((input: { key: string; expiresAt: Millis }) =>
      this.sql('INSERT INTO dpop_proofs (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(input.key, input.expiresAt).changes === 1);
  }

  /**
   * Group commit (see TurnBatcher): the calls of one event-loop turn run in one `BEGIN IMMEDIATE`
   * transaction, each its own statements in arrival order, sharing one COMMIT (which writes each page
   * they share into the WAL once). A lone call is a batch of one. The transaction function is built once
   * (better-sqlite3 builds a wrapper per `transaction()` call).
   */
  private groupCommitted<I, O>(apply: (input: I) => O): TurnBatcher<I, O> {
    const inOneTransaction = this.db.transaction((inputs: I[]) => inputs.map(apply));
    const commit = (inputs: I[]): Promise<O[]> => this.run(() => {
      const outcomes = inOneTransaction.immediate(inputs);
      this.wrote(inputs.length);
      return outcomes;
    });
    return new TurnBatcher<I, O>(commit, async (input) => (await commit([input]))[0]!, (err) => err instanceof StoreUnavailableError);
  }

  /** Prepared once, reused: the refresh path never re-parses SQL. */
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  private run<T>(work: () => T): Promise<T> {
    if (!this.db.open) return Promise.reject(new StoreUnavailableError());
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(isUnavailable(err) ? new StoreUnavailableError(err) : err);
    }
  }

  private immediate<T>(work: () => T): T {
    return this.db.transaction(work).immediate();
  }

  /**
   * Counts hot-path writes; short-lived stores (CLI commands, most tests) never start the checkpointer.
   * Runs after a COMMIT, so it must not throw: the batcher would take that for a failed batch.
   */
  private wrote(count: number): void {
    const before = this.writes;
    this.writes += count;
    if (before >= CHECKPOINTER_AFTER_WRITES || this.writes < CHECKPOINTER_AFTER_WRITES || this.path === ':memory:') return;
    try {
      this.startCheckpointer();
    } catch {
      // Without the worker, SQLite's own automatic checkpoint does the work.
    }
  }

  private startCheckpointer(): void {
    const worker = new Worker(CHECKPOINTER_SOURCE, {
      eval: true,
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'), path: this.path,
        synchronous: this.synchronous, everyMs: CHECKPOINT_EVERY_MS, idleMs: CHECKPOINT_IDLE_MS,
      },
    });
    worker.unref();
    worker.on('error', () => {
      // Without the worker, SQLite's own automatic checkpoint does the work, as it did before.
      if (this.checkpointer === worker) this.checkpointer = null;
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
    });
    this.checkpointer = worker;
    this.db.pragma(`wal_autocheckpoint = ${MAIN_AUTOCHECKPOINT_PAGES}`);
  }

  migrate(): Promise<void> {
    return this.run(() => {
      this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
      this.immediate(() => {
        const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as Row;
        const current = Number(row.v ?? 0);
        if (current > SQLITE_MIGRATIONS.length) {
          throw new Error(`the database schema is at version ${current}, newer than this Rotor (${SQLITE_MIGRATIONS.length}); upgrade Rotor`);
        }
        SQLITE_MIGRATIONS.slice(current).forEach((migration, i) => {
          this.db.exec(migration);
          this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(current + i + 1, Date.now());
        });
      });
    });
  }

  ping(): Promise<void> {
    return this.run(() => {
      this.sql('SELECT 1').get();
    });
  }

  async close(): Promise<void> {
    // Rotations already accepted commit (or fail) before the connection goes.
    await Promise.all([this.rotations.drain(), this.touches.drain(), this.dpopProofs.drain()]);
    const worker = this.checkpointer;
    this.checkpointer = null;
    if (worker) {
      // The worker closes its connection first, so the last connection to close is this one.
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), 2000);
      await exited;
      clearTimeout(timer);
    }
    this.db.close();
  }

  // ── apps ───────────────────────────────────────────────────────────────────────────────────────

  createApp(input: { app: App; appKey: AppKeyRecord; signingKey: SigningKeyRecord }): Promise<{ created: boolean }> {
    return this.run(() =>
      this.immediate(() => {
        const { app } = input;
        const inserted = this.sql(
          `INSERT INTO apps (id, name, profile, public, policy, description, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        ).run(app.id, app.name, app.profile, app.public ? 1 : 0, JSON.stringify(app.policy), app.description, app.createdAt, app.updatedAt);
        if (inserted.changes === 0) return { created: false };
        this.insertAppKey(input.appKey);
        this.insertSigningKey(input.signingKey);
        return { created: true };
      }),
    );
  }

  findApp(ref: { id?: string; name?: string }): Promise<App | null> {
    return this.run(() => {
      const row = ref.id !== undefined
        ? this.sql('SELECT * FROM apps WHERE id = ?').get(ref.id)
        : this.sql('SELECT * FROM apps WHERE name = ?').get(ref.name ?? '');
      return row ? appFromRow(row as Row) : null;
    });
  }

  listApps(): Promise<App[]> {
    return this.run(() => (this.sql('SELECT * FROM apps ORDER BY name').all() as Row[]).map(appFromRow));
  }

  updateApp(app: App, expectUpdatedAt: Millis): Promise<{ updated: true } | { updated: false; reason: 'stale' | 'name_taken' }> {
    return this.run(() => {
      try {
        // The compare-and-set: only the row as its caller read it (updated_at is the row's version).
        const result = this.sql(
          'UPDATE apps SET name = ?, public = ?, policy = ?, description = ?, updated_at = ? WHERE id = ? AND updated_at = ?',
        ).run(app.name, app.public ? 1 : 0, JSON.stringify(app.policy), app.description, app.updatedAt, app.id, expectUpdatedAt);
        return result.changes === 1 ? { updated: true as const } : { updated: false as const, reason: 'stale' as const };
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return { updated: false as const, reason: 'name_taken' as const };
        throw err;
      }
    });
  }

  deleteApp(appId: string): Promise<boolean> {
    return this.run(() => this.sql('DELETE FROM apps WHERE id = ?').run(appId).changes === 1);
  }

  // ── app keys ───────────────────────────────────────────────────────────────────────────────────

  private insertAppKey(key: AppKeyRecord): void {
    this.sql('INSERT INTO app_keys (id, app_id, secret_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)')
      .run(key.id, key.appId, key.secretHash, key.createdAt, key.revokedAt);
  }

  createAppKey(key: AppKeyRecord): Promise<void> {
    return this.run(() => this.insertAppKey(key));
  }

  findAppKey(id: string): Promise<AppKeyRecord | null> {
    return this.run(() => {
      const row = this.sql('SELECT * FROM app_keys WHERE id = ?').get(id);
      return row ? appKeyFromRow(row as Row) : null;
    });
  }

  listAppKeys(appId: string): Promise<AppKeyRecord[]> {
    return this.run(() => (this.sql('SELECT * FROM app_keys WHERE app_id = ? ORDER BY id').all(appId) as Row[]).map(appKeyFromRow));
  }

  revokeAppKey(appId: string, id: string, now: Millis): Promise<boolean> {
    return this.run(() =>
      this.sql('UPDATE app_keys SET revoked_at = ? WHERE app_id = ? AND id = ? AND revoked_at IS NULL').run(now, appId, id).changes === 1,
    );
  }

  // ── signing keys ───────────────────────────────────────────────────────────────────────────────

  private insertSigningKey(key: SigningKeyRecord): void {
    this.sql(
      `INSERT INTO signing_keys (kid, app_id, alg, state, public_jwk, private_sealed, created_at, retired_at, publish_until, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      key.kid, key.appId, key.alg, key.state, key.publicJwk ? JSON.stringify(key.publicJwk) : null, key.privateSealed,
      key.createdAt, key.retiredAt, key.publishUntil, key.revokedAt,
    );
  }

  listSigningKeys(appId: string): Promise<SigningKeyRecord[]> {
    return this.run(() => (this.sql('SELECT * FROM signing_keys WHERE app_id = ? ORDER BY kid').all(appId) as Row[]).map(signingKeyFromRow));
  }

  findSigningKey(kid: string): Promise<SigningKeyRecord | null> {
    return this.run(() => {
      const row = this.sql('SELECT * FROM signing_keys WHERE kid = ?').get(kid);
      return row ? signingKeyFromRow(row as Row) : null;
    });
  }

  listPublishedSigningKeys(now: Millis): Promise<SigningKeyRecord[]> {
    return this.run(() =>
      (this.sql(
        `SELECT * FROM signing_keys WHERE state = 'active' OR (state = 'retiring' AND publish_until > ?) ORDER BY app_id, kid`,
      ).all(now) as Row[]).map(signingKeyFromRow),
    );
  }

  rotateSigningKey(input: {
    appId: string; expectActiveKid: string | null; next: SigningKeyRecord; now: Millis; publishUntil: Millis;
  }): Promise<{ rotated: boolean }> {
    return this.run(() =>
      this.immediate(() => {
        const active = this.sql(`SELECT kid FROM signing_keys WHERE app_id = ? AND state = 'active'`).get(input.appId) as Row | undefined;
        if ((active ? String(active.kid) : null) !== input.expectActiveKid) return { rotated: false };
        if (active) {
          this.sql(`UPDATE signing_keys SET state = 'retiring', retired_at = ?, publish_until = ? WHERE kid = ?`)
            .run(input.now, input.publishUntil, active.kid);
        }
        this.insertSigningKey(input.next);
        this.bumpKeysVersion(input.appId);
        return { rotated: true };
      }),
    );
  }

  revokeSigningKey(appId: string, kid: string, now: Millis): Promise<boolean> {
    return this.run(() =>
      this.immediate(() => {
        const revoked = this.sql(`UPDATE signing_keys SET state = 'revoked', revoked_at = ? WHERE app_id = ? AND kid = ? AND state != 'revoked'`)
          .run(now, appId, kid).changes === 1;
        if (revoked) this.bumpKeysVersion(appId);
        return revoked;
      }),
    );
  }

  signingKeysVersion(appId: string): Promise<number> {
    return this.run(() => Number((this.sql('SELECT keys_version FROM apps WHERE id = ?').get(appId) as Row | undefined)?.keys_version ?? 0));
  }

  /** In the transaction of every signing-key change (S2-13). */
  private bumpKeysVersion(appId: string): void {
    this.sql('UPDATE apps SET keys_version = keys_version + 1 WHERE id = ?').run(appId);
  }

  // ── subjects ───────────────────────────────────────────────────────────────────────────────────

  findSubject(appId: string, subject: string): Promise<Subject | null> {
    return this.run(() => {
      const row = this.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(appId, subject);
      return row ? subjectFromRow(row as Row) : null;
    });
  }

  /**
   * In one `BEGIN IMMEDIATE` transaction, which holds the database's write lock from its first
   * statement: no other connection or process writes between the read of the status before and the
   * write, nor between the write and the revocation.
   */
  patchSubject(input: { appId: string; subject: string; set: SubjectColumns; now: Millis }): Promise<{
    subject: Subject; previousStatus: SubjectStatus | null;
  }> {
    const { appId, subject, set, now } = input;
    return this.run(() =>
      this.immediate(() => {
        const patch = subjectPatchSql(appId, subject, set, now);
        const before = this.sql('SELECT status FROM subjects WHERE app_id = ? AND subject = ?').get(appId, subject) as Row | undefined;
        if (!before) {
          this.sql(`INSERT INTO subjects (${SUBJECT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(...patch.insert);
        } else {
          // Only the columns the patch names: a concurrent patch of another column keeps its value.
          const assignments = [...patch.assignments.map((a) => `${a.column} = ?`), 'updated_at = ?'].join(', ');
          this.sql(`UPDATE subjects SET ${assignments} WHERE app_id = ? AND subject = ?`)
            .run(...patch.assignments.map((a) => a.value), now, appId, subject);
        }
        const stored = subjectFromRow(this.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(appId, subject) as Row);
        if (stored.status === 'disabled') this.revokeSubjectSessionsNow(appId, subject, 'subject_disabled', now);
        return { subject: stored, previousStatus: before ? (before.status as SubjectStatus) : null };
      }),
    );
  }

  deleteSubject(appId: string, subject: string, now: Millis): Promise<boolean> {
    return this.run(() =>
      this.immediate(() => {
        this.revokeSubjectSessionsNow(appId, subject, 'subject_deleted', now);
        return this.sql('DELETE FROM subjects WHERE app_id = ? AND subject = ?').run(appId, subject).changes === 1;
      }),
    );
  }

  // ── sessions ───────────────────────────────────────────────────────────────────────────────────

  issueSession(input: {
    session: Session; newSubjectClaims: Record<string, unknown>; revokeOthers?: string;
  }): Promise<{ issued: true; subject: Subject } | { issued: false; reason: 'subject_disabled' }> {
    return this.run(() =>
      this.immediate(() => {
        const { session } = input;
        let row = this.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(session.appId, session.subject) as Row | undefined;
        if (!row) {
          this.sql(
            `INSERT INTO subjects (app_id, subject, claims, status, created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?)`,
          ).run(session.appId, session.subject, JSON.stringify(input.newSubjectClaims), session.createdAt, session.createdAt);
          row = this.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(session.appId, session.subject) as Row;
        }
        const subject = subjectFromRow(row);
        if (subject.status !== 'active') return { issued: false as const, reason: 'subject_disabled' as const };
        if (input.revokeOthers) this.revokeSubjectSessionsNow(session.appId, session.subject, input.revokeOthers, session.createdAt);
        this.insertSession(session);
        return { issued: true as const, subject };
      }),
    );
  }

  private insertSession(s: Session): void {
    this.sql(
      `INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
         last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at, locator, dpop_jkt, ${SESSION_CHAIN_COLUMNS})
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      s.id, s.appId, s.subject, JSON.stringify(s.claims), s.audience, s.createdAt, s.lastRenewedAt, s.expiresAt, s.ip,
      s.userAgent, s.lastIp, s.lastUserAgent, s.revokedAt, s.revokeReason, s.horizonAt, s.locator, s.dpopJkt, ...chainValues(s.refresh),
    );
  }

  useDpopProof(input: { key: string; expiresAt: Millis }): Promise<boolean> {
    return this.dpopProofs.submit(input);
  }

  findSession(id: string): Promise<FoundSession | null> {
    return this.run(() => foundSessionFromRow(this.sql(FIND_SESSION_SQL).get(id) as Row | undefined));
  }

  findSessionByLocator(locator: string): Promise<FoundSession | null> {
    return this.run(() => foundSessionFromRow(this.sql(FIND_SESSION_BY_LOCATOR_SQL).get(locator) as Row | undefined));
  }

  listSessions(appId: string, subject: string): Promise<Session[]> {
    return this.run(() =>
      (this.sql('SELECT * FROM sessions WHERE app_id = ? AND subject = ? ORDER BY id DESC').all(appId, subject) as Row[])
        .map((row) => sessionFromRow(row)),
    );
  }

  revokeSession(sessionId: string, reason: string, now: Millis): Promise<boolean> {
    return this.run(() =>
      this.sql('UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL')
        .run(now, reason, sessionId).changes === 1,
    );
  }

  private revokeSubjectSessionsNow(appId: string, subject: string, reason: string, now: Millis): number {
    return this.sql('UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE app_id = ? AND subject = ? AND revoked_at IS NULL')
      .run(now, reason, appId, subject).changes;
  }

  revokeSubjectSessions(appId: string, subject: string, reason: string, now: Millis): Promise<number> {
    return this.run(() => this.revokeSubjectSessionsNow(appId, subject, reason, now));
  }

  /** Group-committed like rotations: a renewal without rotation (Verifik) is also on the hot path. */
  touchSession(input: TouchInput): Promise<boolean> {
    if (!this.db.open) return Promise.reject(new StoreUnavailableError());
    return this.touches.submit(input);
  }

  private touchOne(input: TouchInput): boolean {
    return this.sql(
      `UPDATE sessions SET last_renewed_at = ?, last_ip = COALESCE(?, last_ip), last_user_agent = COALESCE(?, last_user_agent),
         horizon_at = MAX(horizon_at, ?) WHERE id = ? AND revoked_at IS NULL`,
    ).run(input.now, input.lastIp, input.lastUserAgent, input.horizonAt, input.sessionId).changes === 1;
  }

  // ── refresh tokens ─────────────────────────────────────────────────────────────────────────────

  findLiveLegacyRefresh(sessionId: string): Promise<RefreshRecord | null> {
    return this.run(() => {
      const row = this.sql(
        `SELECT r.* FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
         WHERE r.session_id = ? AND r.consumed_at IS NULL AND s.generation = 0 ORDER BY r.issued_at DESC LIMIT 1`,
      ).get(sessionId) as Row | undefined;
      return row ? refreshFromRow(row) : null;
    });
  }

  findLegacyRefresh(id: string): Promise<FoundLegacyRefresh | null> {
    return this.run(() => {
      const row = this.sql(FIND_LEGACY_SQL).get(id) as Row | undefined;
      if (!row) return null;
      return { ...(foundSessionFromRow(row, 's_') as FoundSession), record: refreshFromRow(row) };
    });
  }

  /** Group-committed (see groupCommitted): each rotation is still its own compare-and-set deciding its race. */
  rotateSession(input: RotateInput): Promise<{ rotated: boolean }> {
    if (!this.db.open) return Promise.reject(new StoreUnavailableError());
    return this.rotations.submit(input);
  }

  upgradeLegacy(input: { legacyId: string; locator: string | null } & RotateInput): Promise<{ rotated: boolean }> {
    return this.run(() =>
      this.immediate(() => {
        const consumed = this.sql(
          `UPDATE refresh_tokens SET consumed_at = ?, successor_id = ? WHERE id = ? AND consumed_at IS NULL AND session_id = ?`,
        ).run(input.now, UPGRADED, input.legacyId, input.sessionId).changes === 1;
        // Both or neither: a lost second write rolls the first back.
        if (!consumed || !this.rotateOne(input)) throw new LostRace();
        if (input.locator !== null) this.sql('UPDATE sessions SET locator = ? WHERE id = ? AND locator IS NULL').run(input.locator, input.sessionId);
        return { rotated: true };
      }),
    ).catch((err: unknown) => {
      if (err instanceof LostRace) return { rotated: false };
      throw err;
    });
  }

  /** Inside a transaction: the one conditional write that decides the race. */
  private rotateOne(input: RotateInput): boolean {
    const n = input.next;
    return this.sql(ROTATE_SQL).run(
      n.generation, n.issuedAt, n.notBefore, n.expiresAt, n.successorSealed, input.now, input.lastIp, input.lastUserAgent,
      input.horizonAt, input.bindJkt ?? null, input.sessionId, input.expectGeneration,
    ).changes === 1;
  }

  addRateHits(input: { windowStart: Millis; hits: { key: string; count: number }[] }): Promise<Map<string, number>> {
    return this.run(() =>
      this.immediate(() => {
        const original = new Map<string, string>();
        const add = this.sql(
          `INSERT INTO rate_hits (window_start, key, count) VALUES (?, ?, ?)
           ON CONFLICT (window_start, key) DO UPDATE SET count = count + excluded.count`,
        );
        for (const { key, count } of input.hits) {
          const stored = storedRateKey(key);
          original.set(stored, key);
          add.run(input.windowStart, stored, count);
        }
        const rows = this.sql('SELECT key, count FROM rate_hits WHERE window_start = ?').all(input.windowStart) as Row[];
        return rateTotals(rows, original);
      }),
    );
  }

  prune(now: Millis, options: { revokedRetention: number }): Promise<{ refreshTokens: number; sessions: number }> {
    return this.run(() =>
      this.immediate(() => {
        const cutoff = now - options.revokedRetention;
        const sessions = this.sql(
          'DELETE FROM sessions WHERE horizon_at < ? OR (revoked_at IS NOT NULL AND revoked_at < ?)',
        ).run(cutoff, cutoff).changes;
        const refreshTokens = this.sql('DELETE FROM refresh_tokens WHERE expires_at <= ?').run(now).changes;
        this.sql('UPDATE refresh_tokens SET successor_sealed = NULL WHERE successor_sealed IS NOT NULL AND consumed_at < ?')
          .run(now - MAX_GRACE_MS);
        // A live token's seal is only needed while its parent may still retry.
        this.sql('UPDATE sessions SET successor_sealed = NULL WHERE successor_sealed IS NOT NULL AND refresh_issued_at < ?')
          .run(now - MAX_GRACE_MS);
        this.sql('DELETE FROM rate_hits WHERE window_start < ?').run(now - RATE_WINDOWS_KEPT_MS);
        this.sql('DELETE FROM dpop_proofs WHERE expires_at <= ?').run(now);
        return { refreshTokens, sessions };
      }),
    );
  }

  // ── listings, security events, activity samples ───────────────────────────────────────────────

  listSubjects(appId: string, page: { after: string | null; limit: number; now: Millis }): Promise<SubjectListing[]> {
    return this.run(() =>
      (this.sql(
        `SELECT subj.*, (SELECT count(*) FROM sessions s WHERE s.app_id = subj.app_id AND s.subject = subj.subject
            AND s.revoked_at IS NULL AND s.horizon_at > ?) AS live_sessions
         FROM subjects subj WHERE subj.app_id = ? AND subj.subject > ? ORDER BY subj.subject LIMIT ?`,
      ).all(page.now, appId, page.after ?? '', clampLimit(page.limit)) as Row[]).map(subjectListingFromRow),
    );
  }

  listAppSessions(appId: string, page: { subject: string | null; before: string | null; limit: number }): Promise<Session[]> {
    const before = page.before ?? NEWEST;
    return this.run(() => {
      const rows = page.subject === null
        ? this.sql('SELECT * FROM sessions WHERE app_id = ? AND id < ? ORDER BY id DESC LIMIT ?').all(appId, before, clampLimit(page.limit))
        : this.sql('SELECT * FROM sessions WHERE app_id = ? AND subject = ? AND id < ? ORDER BY id DESC LIMIT ?')
          .all(appId, page.subject, before, clampLimit(page.limit));
      return (rows as Row[]).map((row) => sessionFromRow(row));
    });
  }

  appendEvent(event: NewSecurityEventRecord): Promise<void> {
    return this.run(() => {
      this.sql('INSERT INTO security_events (at, event, app_id, fields) VALUES (?, ?, ?, ?)')
        .run(event.at, event.event, event.appId, JSON.stringify(event.fields));
    });
  }

  listEvents(query: { afterId: number | null; sinceAt: Millis | null; limit: number }): Promise<SecurityEventRecord[]> {
    const limit = clampLimit(query.limit);
    return this.run(() => {
      if (query.afterId === null && query.sinceAt === null) {
        const newest = this.sql('SELECT * FROM security_events ORDER BY id DESC LIMIT ?').all(limit) as Row[];
        return newest.reverse().map(eventFromRow);
      }
      return (this.sql('SELECT * FROM security_events WHERE id > ? AND at >= ? ORDER BY id LIMIT ?')
        .all(query.afterId ?? 0, query.sinceAt ?? 0, limit) as Row[]).map(eventFromRow);
    });
  }

  recordActivity(sample: ActivitySample): Promise<void> {
    return this.run(() => {
      this.sql('INSERT INTO activity_samples (at, instance, data) VALUES (?, ?, ?) ON CONFLICT (at, instance) DO UPDATE SET data = excluded.data')
        .run(sample.at, sample.instance, JSON.stringify(sample.data));
    });
  }

  listActivity(since: Millis): Promise<ActivitySample[]> {
    return this.run(() => (this.sql('SELECT * FROM activity_samples WHERE at >= ? ORDER BY at, instance').all(since) as Row[]).map(activityFromRow));
  }

  pruneActivity(input: { eventsBefore: Millis; samplesBefore: Millis }): Promise<{ events: number; samples: number }> {
    return this.run(() => ({
      events: this.sql('DELETE FROM security_events WHERE at < ?').run(input.eventsBefore).changes,
      samples: this.sql('DELETE FROM activity_samples WHERE at < ?').run(input.samplesBefore).changes,
    }));
  }
}
