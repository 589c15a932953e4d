import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    };
  },
});
