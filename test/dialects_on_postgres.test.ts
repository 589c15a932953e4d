import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Every dialect works against PostgreSQL: the dialect suites, unchanged, with each test server on
 * PostgreSQL (a schema of its own; see test/helpers/server.ts). New dialect suites join by themselves.
 */
process.env.ROTOR_TEST_STORE = 'postgres';
const dir = join(import.meta.dirname, 'dialects');
for (const file of readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort()) {
  await import(join(dir, file));
}
