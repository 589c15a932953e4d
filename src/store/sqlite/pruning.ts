import type { Millis } from '../../domain/types.js';
import type { PruneOptions, PruneResult } from '../../domain/store.js';
import { PRUNE_SKEW_MS, RATE_WINDOWS_KEPT_MS, SEAL_KEPT_MS } from '../rows.js';
import type { SqliteConnection } from './connection.js';

/** Deletes rows nothing can use any more (docs/architecture.md "Pruning"), in one transaction. */
export function prune(c: SqliteConnection, now: Millis, options: PruneOptions): Promise<PruneResult> {
  return c.run(() =>
    c.immediate(() => {
      const cutoff = now - options.revokedRetention;
      const sessions = c.sql(
        'DELETE FROM sessions WHERE horizon_at < ? OR (revoked_at IS NOT NULL AND revoked_at < ?)',
      ).run(cutoff, cutoff).changes;
      const refreshTokens = c.sql('DELETE FROM refresh_tokens WHERE expires_at <= ?').run(now - PRUNE_SKEW_MS).changes;
      c.sql('UPDATE refresh_tokens SET successor_sealed = NULL WHERE successor_sealed IS NOT NULL AND consumed_at < ?')
        .run(now - SEAL_KEPT_MS);
      // A live token's seal is only needed while its parent may still retry.
      c.sql('UPDATE sessions SET successor_sealed = NULL WHERE successor_sealed IS NOT NULL AND refresh_issued_at < ?')
        .run(now - SEAL_KEPT_MS);
      c.sql('DELETE FROM rate_hits WHERE window_start < ?').run(now - RATE_WINDOWS_KEPT_MS);
      c.sql('DELETE FROM dpop_marks WHERE expires_at <= ?').run(now - PRUNE_SKEW_MS);
      c.sql('DELETE FROM dpop_proofs WHERE expires_at <= ?').run(now - PRUNE_SKEW_MS); // the release before's marks
      return { refreshTokens, sessions };
    }),
  );
}
