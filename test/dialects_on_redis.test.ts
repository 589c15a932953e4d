import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { startRedisCluster } from './helpers/redis_cluster.js';

/**
 * Every dialect works against Redis Cluster: the dialect suites, unchanged, with each test server on one
 * six-node cluster started for this file (a key prefix per server; see test/helpers/server.ts).
 */
const cluster = await startRedisCluster();
afterAll(() => cluster.stop());
process.env.ROTOR_TEST_STORE = 'redis';
process.env.ROTOR_TEST_REDIS_SEEDS = cluster.seeds;
const dir = join(import.meta.dirname, 'dialects');
for (const file of readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort()) {
  await import(join(dir, file));
}
