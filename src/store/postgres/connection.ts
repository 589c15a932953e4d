import pg from 'pg';
import { StoreUnavailableError } from '../../domain/errors.js';
import { connectionIsBroken, OutcomeUnknownError, outcomeUnknown, toStoreError } from './errors.js';
import { MIGRATION_LOCK, POSTGRES_MIGRATIONS } from './schema.js';

export type Row = Record<string, unknown>;

/** Clock samples slower than this do not move the offset (see `sampleClock`). */
const MAX_SAMPLE_RTT_MS = 1000;

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

/** A connection or transaction to run statements on; `name` makes a statement a prepared one. */
export interface Querier {
  query(text: string, values?: unknown[], name?: string): Promise<Row[]>;
}

export const noop = (): void => {};

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
 * The pool and how statements run on it: one statement on a pooled connection, a READ COMMITTED
 * transaction, or a checked-out client; migrations on a connection of their own. Driver and server
 * failures that mean "not now" become `StoreUnavailableError` (503); text the database cannot store
 * (NUL) becomes `invalid_request` (400).
 */
export class PostgresConnection {
  private readonly pool: pg.Pool;
  private readonly prepared: boolean;
  private readonly connectionString: string;
  private readonly connectTimeoutMs: number;
  /**
   * How long after it is built a rotation may still take effect (see outcome.ts): a wait for a
   * connection, the statement's own timeout, the client's two seconds more, and one for margin.
   */
  private readonly rotationBudgetMs: number;
  /** The database's clock minus this host's, from the last sample (`sampleClock`). */
  private clockOffsetMs = 0;
  private sampling: Promise<number> | null = null;

  constructor(connectionString: string, options: PostgresStoreOptions = {}) {
    const statementTimeout = options.statementTimeoutMs ?? 5000;
    this.prepared = options.preparedStatements ?? true;
    this.connectionString = connectionString;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 3000;
    this.rotationBudgetMs = this.connectTimeoutMs + statementTimeout + 3000;
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

  async checkout(): Promise<pg.PoolClient> {
    try {
      const client = await this.pool.connect();
      client.on('error', noop); // a socket error while checked out surfaces through the running query
      return client;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  release(client: pg.PoolClient, err?: unknown): void {
    client.removeListener('error', noop);
    client.release(err !== undefined && connectionIsBroken(err) ? (err as Error) : undefined);
  }

  querier(client: pg.PoolClient): Querier {
    return {
      query: async (text, values, name) => {
        const config: pg.QueryConfig = { text, values: values ?? [] };
        if (name && this.prepared) config.name = name;
        return (await client.query(config)).rows as Row[];
      },
    };
  }

  /** One statement on a pooled connection (one round trip); `name` makes it a prepared statement. */
  one(text: string, values: unknown[] = [], name?: string): Promise<Row[]> {
    return this.statement(text, values, name, toStoreError);
  }

  /**
   * `one` for a write whose caller settles an unknown outcome: once the statement was handed to a
   * connection, a break before its result was read throws `OutcomeUnknownError` (it may have committed).
   * A connection not obtained fails as in `one`: nothing was sent. The same one round trip.
   */
  write(text: string, values: unknown[], name?: string): Promise<Row[]> {
    return this.statement(text, values, name, (err) => (outcomeUnknown(err) ? new OutcomeUnknownError(err) : toStoreError(err)));
  }

  private async statement(text: string, values: unknown[], name: string | undefined, failure: (err: unknown) => unknown): Promise<Row[]> {
    const client = await this.checkout();
    try {
      const rows = await this.querier(client).query(text, values, name);
      this.release(client);
      return rows;
    } catch (err) {
      this.release(client, err);
      throw failure(err);
    }
  }

  /** A READ COMMITTED transaction: each statement sees what committed before it started. */
  async tx<T>(work: (q: Querier) => Promise<T>): Promise<T> {
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

  /**
   * The database's clock (clock_timestamp), in ms, and the offset rotation deadlines are reckoned with.
   * Sampled after migrating, at each `Store.clockNow`, and after a rotation came back late (one sample
   * at a time). A sample whose round trip took over a second (a wait for a connection, a loaded server)
   * keeps the offset as it was: its error is up to half that.
   */
  sampleClock(): Promise<number> {
    this.sampling ??= (async () => {
      try {
        const sentAt = Date.now();
        const [row] = await this.one('SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now', [], 'rotor_clock_now');
        const now = Math.round(Number(row?.now));
        const receivedAt = Date.now();
        if (Number.isFinite(now) && receivedAt - sentAt <= MAX_SAMPLE_RTT_MS) this.clockOffsetMs = now - Math.round((sentAt + receivedAt) / 2);
        return now;
      } finally {
        this.sampling = null;
      }
    })();
    return this.sampling;
  }

  /** This host's estimate of the database's clock now. */
  databaseNow(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /**
   * The database time (ms, by its clock_timestamp) after which a rotation built now takes no effect
   * (outcome.ts). An offset sampled wrong moves it, never the guarantee: the statement and the settling
   * read both judge it by the database's clock.
   */
  rotationDeadline(): number {
    return this.databaseNow() + this.rotationBudgetMs;
  }

  /**
   * A rotation that rotated nothing because it reached the database after its deadline: 503, never a
   * lost race. The clock is sampled again, in case a wrong offset made the deadlines early.
   */
  lateRotation(): StoreUnavailableError {
    this.sampleClock().catch(noop);
    return new StoreUnavailableError(new Error('the rotation reached the database after its deadline'));
  }

  async ping(): Promise<void> {
    await this.one('SELECT 1');
  }

  /** Ends the pool (after the store has answered what it accepted). */
  end(): Promise<void> {
    return this.pool.end();
  }
}
