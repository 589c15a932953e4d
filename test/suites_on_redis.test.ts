import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { startRedisCluster } from './helpers/redis_cluster.js';

/**
 * The native, OAuth and admin API suites and the security suites, unchanged, with each test server on
 * one real six-node Redis Cluster started for this file (a key prefix per server; see
 * test/helpers/server.ts), as test/suites_on_postgres.test.ts runs them on PostgreSQL. The tests about
 * SQLite files skip themselves; SIGKILL, fuzzing and slow clients stay on SQLite.
 */
const cluster = await startRedisCluster();
afterAll(() => cluster.stop());
process.env.ROTOR_TEST_STORE = 'redis';
process.env.ROTOR_TEST_REDIS_SEEDS = cluster.seeds;
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
