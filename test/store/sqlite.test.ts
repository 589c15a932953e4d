import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { PRUNE_SKEW_MS } from '../../src/store/rows.js';
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
  it('the DPoP replay cache is one tree ordered by expiry; the release before\'s marks are still replays, and its instances still write them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-store-'));
    const path = join(dir, 'rotor.db');
    const NOW = Date.now();
    // What the release before ran for each proof (schema 7, src/store/sqlite/guards.ts at 13013dd).
    const markAsBefore = (db: Database.Database, key: string, expiresAt: number) =>
      db.prepare('INSERT INTO dpop_proofs (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(key, expiresAt).changes === 1;
    try {
      const old = new Database(path);
      old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
      SQLITE_MIGRATIONS.slice(0, 7).forEach((migration, i) => {
        old.exec(migration);
        old.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, NOW);
      });
      markAsBefore(old, 'seen', NOW + 600_000);
      markAsBefore(old, 'stale', NOW + 1000);
      const store = new SqliteStore(path);
      try {
        await store.migrate();
        // A mark of the release before, even with another expiry than this release derives: still a replay.
        expect(await store.useDpopProof({ key: 'seen', expiresAt: NOW + 300_000 })).toBe(false);
        expect(await store.useDpopProof({ key: 'fresh', expiresAt: NOW + 600_000 })).toBe(true);
        expect(await store.useDpopProof({ key: 'fresh', expiresAt: NOW + 600_000 })).toBe(false);
        // An instance of the release before on the same file, not restarted yet, still writes its marks.
        expect(markAsBefore(old, 'older-instance', NOW + 600_000)).toBe(true);
        old.close();
        expect(await store.useDpopProof({ key: 'older-instance', expiresAt: NOW + 500_000 })).toBe(false);
        await store.prune(NOW + 1000 + PRUNE_SKEW_MS + 1, { revokedRetention: 0 }); // a minute past 'stale''s expiry
        const db = new Database(path, { readonly: true });
        try {
          expect(db.prepare('SELECT key FROM dpop_marks ORDER BY expires_at, key').all()).toEqual([{ key: 'fresh' }]);
          expect(db.prepare('SELECT key FROM dpop_proofs ORDER BY key').all()).toEqual([{ key: 'older-instance' }, { key: 'seen' }]);
          // No second tree to keep up per mark: the primary key is the only index, and pruning searches it.
          expect(db.pragma('index_list(dpop_marks)')).toEqual([expect.objectContaining({ origin: 'pk' })]);
          const plan = db.prepare('EXPLAIN QUERY PLAN DELETE FROM dpop_marks WHERE expires_at <= ?').all(NOW) as { detail: string }[];
          expect(plan.map((p) => p.detail).join(' ')).toMatch(/SEARCH dpop_marks USING PRIMARY KEY \(expires_at<\?\)/);
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
