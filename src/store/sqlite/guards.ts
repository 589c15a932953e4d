import type { DpopProofInput, RateHitsInput } from '../../domain/store.js';
import { rateTotals, storedRateKey } from '../rows.js';
import type { Row, SqliteConnection } from './connection.js';

/** State that guards requests across instances: the DPoP replay cache and pooled rate-limit counts. */

/** Whether this is the proof's first use; run inside a group-committed turn (sqlite_store.ts). */
export function insertDpopProof(c: SqliteConnection, input: DpopProofInput): boolean {
  // A mark the release before wrote (dpop_proofs, keyed by key alone) counts too: a lookup, no write.
  return c.sql(
    `INSERT INTO dpop_marks (expires_at, key) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM dpop_proofs WHERE key = ?)
     ON CONFLICT (expires_at, key) DO NOTHING`,
  ).run(input.expiresAt, input.key, input.key).changes === 1;
}

export function addRateHits(c: SqliteConnection, input: RateHitsInput): Promise<Map<string, number>> {
  return c.run(() =>
    c.immediate(() => {
      const original = new Map<string, string>();
      const add = c.sql(
        `INSERT INTO rate_hits (window_start, key, count) VALUES (?, ?, ?)
         ON CONFLICT (window_start, key) DO UPDATE SET count = count + excluded.count`,
      );
      for (const { key, count } of input.hits) {
        const stored = storedRateKey(key);
        original.set(stored, key);
        add.run(input.windowStart, stored, count);
      }
      const rows = c.sql('SELECT key, count FROM rate_hits WHERE window_start = ?').all(input.windowStart) as Row[];
      return rateTotals(rows, original);
    }),
  );
}
