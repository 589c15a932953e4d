import type { DpopProofInput, RateHitsInput } from '../../domain/store.js';
import { rateTotals, storedRateKey } from '../rows.js';
import type { PostgresConnection } from './connection.js';

/** State that guards requests across instances: the DPoP replay cache and pooled rate-limit counts. */

/**
 * A proof's first use. Every writer of a mark takes its advisory lock first (transaction-scoped), so that a
 * group-committed rotation can tell, without waiting, whether anyone is between inserting it and committing.
 */
export async function useDpopProof(c: PostgresConnection, input: DpopProofInput): Promise<boolean> {
  const rows = await c.one(
    `INSERT INTO dpop_proofs (key, expires_at) SELECT $1::text, $2::bigint FROM (SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))) AS held
     ON CONFLICT (key) DO NOTHING RETURNING key`,
    [input.key, input.expiresAt], 'rotor_dpop_proof',
  );
  return rows.length === 1;
}

/**
 * Adds this instance's hits and returns the window's totals of every instance. Keys are stored as
 * JSON strings (so a NUL or a lone surrogate in a login name cannot fail the statement), hashed when
 * long (index entries are bounded); upserted in key order, so concurrent instances lock rows in the
 * same order and cannot deadlock.
 */
export async function addRateHits(c: PostgresConnection, input: RateHitsInput): Promise<Map<string, number>> {
  const original = new Map<string, string>();
  const stored = input.hits.map(({ key, count }) => {
    const s = storedRateKey(key);
    original.set(s, key);
    return { key: s, count };
  }).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const rows = await c.one(
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
