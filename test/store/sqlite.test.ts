import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite_store.js';
import { describeStoreConformance } from './conformance.js';
import { describe, expect, it } from 'vitest';

// Each test gets its own database file; every `open()` is another connection to it, as a second
// process sharing the file would have (WAL, busy timeout, BEGIN IMMEDIATE).
describeStoreConformance('sqlite', {
  rateHits: true,
  async freshDatabase() {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-store-'));
    const path = join(dir, 'rotor.db');
    return {
      open: async () => new SqliteStore(path),
      dispose: async () => rmSync(dir, { recursive: true, force: true }),
      atVersion: async (version, statements) => {
        const db = new Database(path);
        try {
          db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
          SQLITE_MIGRATIONS.slice(0, version).forEach((migration, i) => {
            db.exec(migration);
            db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, Date.now());
          });
          for (const statement of statements) db.exec(statement);
        } finally {
          db.close();
        }
      },
    };
  },
});

describe('sqlite specifics', () => {
  it('the DPoP replay cache is one tree ordered by expiry: marks from before the upgrade are still replays, pruning takes its front', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-store-'));
    const path = join(dir, 'rotor.db');
    const NOW = Date.now();
    try {
      const old = new Database(path);
      old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
      SQLITE_MIGRATIONS.slice(0, 7).forEach((migration, i) => {
        old.exec(migration);
        old.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, NOW);
      });
      old.prepare('INSERT INTO dpop_proofs (key, expires_at) VALUES (?, ?), (?, ?)').run('seen', NOW + 600_000, 'stale', NOW + 1000);
      old.close();
      const store = new SqliteStore(path);
      try {
        await store.migrate();
        expect(await store.useDpopProof({ key: 'seen', expiresAt: NOW + 600_000 })).toBe(false);
        expect(await store.useDpopProof({ key: 'fresh', expiresAt: NOW + 600_000 })).toBe(true);
        expect(await store.useDpopProof({ key: 'fresh', expiresAt: NOW + 600_000 })).toBe(false);
        await store.prune(NOW + 2000, { revokedRetention: 0 });
        const db = new Database(path, { readonly: true });
        try {
          expect(db.prepare('SELECT key FROM dpop_proofs ORDER BY expires_at, key').all()).toEqual([{ key: 'fresh' }, { key: 'seen' }]);
          // No second tree to keep up per mark: the primary key is the only index, and pruning searches it.
          expect(db.pragma('index_list(dpop_proofs)')).toEqual([expect.objectContaining({ origin: 'pk' })]);
          const plan = db.prepare('EXPLAIN QUERY PLAN DELETE FROM dpop_proofs WHERE expires_at <= ?').all(NOW) as { detail: string }[];
          expect(plan.map((p) => p.detail).join(' ')).toMatch(/SEARCH dpop_proofs USING PRIMARY KEY \(expires_at<\?\)/);
        } finally {
          db.close();
        }
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
