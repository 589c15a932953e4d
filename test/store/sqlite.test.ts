import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite_store.js';
import { describeStoreConformance } from './conformance.js';

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
