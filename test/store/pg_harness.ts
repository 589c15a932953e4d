import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';

/** Admin connection for tests: the trust-auth PostgreSQL of the test environment. */
export const PG_ADMIN_URL = process.env.ROTOR_TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A database of its own for one test run (`rotor_test_<random>`), dropped afterwards. */
export async function createTestDatabase(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `rotor_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: PG_ADMIN_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A URL whose connections use `schema` first: a fresh, empty namespace inside one test database. */
export function urlWithSchema(databaseUrl: string, schema: string): string {
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

/**
 * A schema of its own in the admin database, for one test server (`ROTOR_TEST_STORE=postgres` runs the
 * HTTP, dialect and security suites on PostgreSQL through test/helpers/server.ts).
 */
export async function createTestSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `rotor_${randomBytes(6).toString('hex')}`;
  liveSchemas.add(schema);
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE SCHEMA ${schema}`);
  return {
    url: urlWithSchema(PG_ADMIN_URL, schema),
    drop: async () => {
      liveSchemas.delete(schema);
      await run(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
}

/** Schemas of test servers that were never closed: dropped when the test file ends. */
const liveSchemas = new Set<string>();
afterAll(async () => {
  if (liveSchemas.size === 0) return;
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    for (const schema of liveSchemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    liveSchemas.clear();
  } finally {
    await client.end();
  }
});
