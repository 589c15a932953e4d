import { importApiSuites } from './helpers/suites.js';

/**
 * The native, OAuth and admin API suites and the security suites, unchanged, with each test server on
 * PostgreSQL (a schema of its own; see test/helpers/server.ts): the store's batching, locking and
 * error mapping meet every API-level invariant on both stores. The few tests that are about SQLite
 * files skip themselves here. SIGKILL, fuzzing and slow clients stay on SQLite (they start their own
 * processes, run long, or do not touch the store); the dialects have test/dialects_on_postgres.test.ts.
 */
process.env.ROTOR_TEST_STORE = 'postgres';
await importApiSuites();
