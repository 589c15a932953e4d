import { databaseTarget, type Config } from '../config.js';
import { ConfigError } from '../config.js';
import type { Store } from './contract.js';
import { PostgresStore, postgresOptionsFromUrl } from './postgres/postgres_store.js';
import { SqliteStore } from './sqlite/sqlite_store.js';

/** Opens (and migrates) the store ROTOR_DATABASE_URL names. */
export async function openStore(config: Config): Promise<Store> {
  const target = databaseTarget(config.databaseUrl);
  let store: Store;
  if (target.kind === 'sqlite') {
    store = new SqliteStore(target.path, { synchronous: config.sqliteSynchronous });
  } else {
    let parsed: ReturnType<typeof postgresOptionsFromUrl>;
    try {
      parsed = postgresOptionsFromUrl(target.url);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    store = new PostgresStore(parsed.connectionString, parsed.options);
  }
  await store.migrate();
  return store;
}
