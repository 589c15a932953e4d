import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The native, OAuth and admin API suites and the security suites, unchanged, with each test server on
 * PostgreSQL (a schema of its own; see test/helpers/server.ts): the store's batching, locking and
 * error mapping meet every API-level invariant on both stores. The few tests that are about SQLite
 * files skip themselves here. SIGKILL, fuzzing and slow clients stay on SQLite (they start their own
 * processes, run long, or do not touch the store); the dialects have test/dialects_on_postgres.test.ts.
 */
process.env.ROTOR_TEST_STORE = 'postgres';
const SUITES: Record<string, (file: string) => boolean> = {
  http: () => true,
  security: (file) => !['sigkill.test.ts', 'fuzz.test.ts', 'slowloris.test.ts'].includes(file),
};
for (const [folder, wanted] of Object.entries(SUITES)) {
  const dir = join(import.meta.dirname, folder);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.test.ts') && wanted(f)).sort()) {
    await import(join(dir, file));
  }
}
