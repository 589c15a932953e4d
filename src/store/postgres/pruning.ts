import type { Millis } from '../../domain/types.js';
import type { PruneOptions, PruneResult } from '../../domain/store.js';
import { PRUNE_SKEW_MS, RATE_WINDOWS_KEPT_MS, SEAL_KEPT_MS } from '../rows.js';
import type { PostgresConnection } from './connection.js';
import { toStoreError } from './errors.js';
import { PRUNE_LOCK } from './schema.js';

/** Rows per pruning statement. */
const PRUNE_BATCH = 1000;

/**
 * One instance prunes at a time (the others skip the round), in batches of short statements, so a
 * large backlog (after downtime, or a first run) never holds locks long or runs into the statement
 * timeout, and each batch commits on its own.
 */
export async function prune(c: PostgresConnection, now: Millis, options: PruneOptions): Promise<PruneResult> {
  const client = await c.checkout();
  const q = c.querier(client);
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
    // Sessions first (their tokens go with them), then tokens: the lock order of a rotation. Rows another
    // transaction holds are skipped (the next round takes them): the pruner never waits on a row, so it
    // is in no lock cycle.
    const sessions = await batches(
      `WITH d AS (DELETE FROM sessions WHERE id IN (
         SELECT id FROM sessions WHERE horizon_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1) LIMIT ${PRUNE_BATCH} FOR UPDATE SKIP LOCKED
       ) RETURNING 1) SELECT count(*)::int AS n FROM d`,
      [cutoff],
    );
    const refreshTokens = await batches(
      `WITH d AS (DELETE FROM refresh_tokens WHERE id IN (
         SELECT id FROM refresh_tokens WHERE expires_at <= $1 LIMIT ${PRUNE_BATCH} FOR UPDATE SKIP LOCKED
       ) RETURNING 1) SELECT count(*)::int AS n FROM d`,
      [now - PRUNE_SKEW_MS],
    );
    await batches(
      `WITH u AS (UPDATE refresh_tokens SET successor_sealed = NULL WHERE id IN (
         SELECT id FROM refresh_tokens WHERE successor_sealed IS NOT NULL AND consumed_at < $1 LIMIT ${PRUNE_BATCH} FOR NO KEY UPDATE SKIP LOCKED
       ) RETURNING 1) SELECT count(*)::int AS n FROM u`,
      [now - SEAL_KEPT_MS],
    );
    // A live token's seal is only needed while its parent may still retry: within the grace window, or
    // for as long as its rotation is unconfirmed (outcome.ts).
    await batches(
      `WITH u AS (UPDATE sessions SET successor_sealed = NULL WHERE id IN (
         SELECT id FROM sessions WHERE successor_sealed IS NOT NULL AND refresh_issued_at < $1
           AND unconfirmed_generation IS DISTINCT FROM generation LIMIT ${PRUNE_BATCH} FOR NO KEY UPDATE SKIP LOCKED
       ) RETURNING 1) SELECT count(*)::int AS n FROM u`,
      [now - SEAL_KEPT_MS],
    );
    await q.query('DELETE FROM rate_hits WHERE window_start < $1', [now - RATE_WINDOWS_KEPT_MS]);
    await batches(
      `WITH d AS (DELETE FROM dpop_proofs WHERE key IN (
         SELECT key FROM dpop_proofs WHERE expires_at <= $1 LIMIT ${PRUNE_BATCH}
       ) RETURNING 1) SELECT count(*)::int AS n FROM d`,
      [now - PRUNE_SKEW_MS],
    );
    await q.query('SELECT pg_advisory_unlock($1)', [PRUNE_LOCK]);
    locked = false;
    return { refreshTokens, sessions };
  } catch (err) {
    failure = err;
    throw toStoreError(err);
  } finally {
    // A connection that still holds the session-level lock is closed, which releases it.
    c.release(client, locked ? new Error('prune interrupted while holding its lock') : failure);
  }
}
