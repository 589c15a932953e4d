import { afterAll } from 'vitest';
import { startRedisCluster } from './helpers/redis_cluster.js';
import { importApiSuites } from './helpers/suites.js';

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
await importApiSuites();
