import { databaseTarget, type Config } from '../config.js';
import { ConfigError } from '../config.js';
import type { Store } from '../domain/store.js';
import { PostgresStore, postgresOptionsFromUrl } from './postgres/postgres_store.js';
import { RedisStore } from './redis/redis_store.js';
import { SqliteStore } from './sqlite/sqlite_store.js';
import { StoreUnavailableError } from '../domain/errors.js';

/** Opens (and migrates) the store ROTOR_DATABASE_URL names. */
export async function openStore(config: Config): Promise<Store> {
  const target = databaseTarget(config.databaseUrl);
  let store: Store;
  if (target.kind === 'sqlite') {
    store = new SqliteStore(target.path, { synchronous: config.sqliteSynchronous });
  } else if (target.kind === 'redis') {
    store = new RedisStore(target.options);
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      if (!(err instanceof StoreUnavailableError)) throw err;
      const seeds = target.options.seeds.map((s) => `${s.host}:${s.port}`).join(', ');
      throw new ConfigError(`ROTOR_DATABASE_URL names no reachable Redis Cluster node with every slot served (tried ${seeds}): start the cluster, or list nodes that are up`);
    }
    return store;
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
