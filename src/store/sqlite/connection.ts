import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { StoreUnavailableError } from '../../domain/errors.js';
import { Checkpointer, CHECKPOINTER_AFTER_WRITES } from './checkpointer.js';
import { createPrivateFile, makePrivateDir } from './file_modes.js';
import { refuseForeignOwner } from '../../crypto/private_files.js';
import { SQLITE_MIGRATIONS } from './schema.js';

export type Row = Record<string, unknown>;

/** SQLite errors that mean "the database cannot take this now" rather than a bug: answered with 503. */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|CORRUPT|NOTADB|PROTOCOL|PERM)/;

function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE.test(code);
}

/** The main connection's automatic checkpoint while the checkpointer runs: a backstop only. */
const MAIN_AUTOCHECKPOINT_PAGES = 4000;

export interface SqliteStoreOptions {
  /** `synchronous` pragma: NORMAL survives process crashes in WAL mode; FULL also survives power loss. */
  synchronous?: 'NORMAL' | 'FULL';
  busyTimeoutMs?: number;
}

/**
 * The store's one connection: its pragmas, prepared statements, error mapping, migrations and WAL
 * checkpointing. better-sqlite3 is synchronous, so each operation runs to completion on the event loop.
 */
export class SqliteConnection {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly synchronous: 'NORMAL' | 'FULL';
  private writes = 0;
  private checkpointer: Checkpointer | null = null;

  constructor(private readonly path: string, options: SqliteStoreOptions = {}) {
    if (path !== ':memory:') {
      // S2-07: a new data directory 0700 and a new database 0600 (its -wal and -shm follow), whatever the umask.
      makePrivateDir(dirname(path));
      createPrivateFile(path);
      // S5-06: a directory or database another local user planted is refused (SQLite would give its -wal
      // and -shm that user too, and that user could read and write every session).
      for (const file of [path, `${path}-wal`, `${path}-shm`]) refuseForeignOwner(file, 'the SQLite database');
    }
    this.synchronous = options.synchronous ?? 'NORMAL';
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${this.synchronous}`);
    this.db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    this.db.pragma('foreign_keys = ON');
  }

  get open(): boolean {
    return this.db.open;
  }

  /** Prepared once, reused: the refresh path never re-parses SQL. */
  sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  /** Runs `work` now; a closed connection or an unavailable database rejects with StoreUnavailableError. */
  run<T>(work: () => T): Promise<T> {
    if (!this.db.open) return Promise.reject(new StoreUnavailableError());
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(isUnavailable(err) ? new StoreUnavailableError(err) : err);
    }
  }

  /** In a `BEGIN IMMEDIATE` transaction, which takes the database's write lock at its first statement. */
  immediate<T>(work: () => T): T {
    return this.db.transaction(work).immediate();
  }

  /**
   * Counts hot-path writes; short-lived stores (CLI commands, most tests) never start the checkpointer.
   * Runs after a COMMIT, so it must not throw: the batcher would take that for a failed batch.
   */
  wrote(count: number): void {
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
    const checkpointer: Checkpointer = new Checkpointer(this.path, this.synchronous, () => {
      // Without the worker, SQLite's own automatic checkpoint does the work, as it did before.
      if (this.checkpointer === checkpointer) this.checkpointer = null;
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
    });
    this.checkpointer = checkpointer;
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

  /** Stops the checkpointer (which closes its connection first, so this one is the last to close), then closes. */
  async close(): Promise<void> {
    const checkpointer = this.checkpointer;
    this.checkpointer = null;
    if (checkpointer) await checkpointer.stop();
    this.db.close();
  }
}
