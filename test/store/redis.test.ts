import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys, RedisStore, REDIS_SCHEMA_VERSION } from '../../src/store/redis/redis_store.js';
import { parseRedisClusterUrl } from '../../src/store/redis/url.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis_cluster.js';
import { writeRowsAtVersion } from '../helpers/redis_rows.js';
import { describeStoreConformance } from './conformance.js';

// One real six-node cluster for this file; each conformance test gets a key prefix of its own.
let cluster: RedisCluster;
let raw: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster();
  raw = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
}, 60_000);

afterAll(async () => {
  await raw?.quit();
  await cluster?.stop();
});

const storeFor = (prefix: string, query = '') => new RedisStore(parseRedisClusterUrl(cluster.url(`prefix=${prefix}${query}`)));

describeStoreConformance('redis cluster', {
  rateHits: true,
  async freshDatabase() {
    const prefix = `t${randomBytes(5).toString('hex')}`;
    return {
      open: async () => storeFor(prefix),
      dispose: async () => {},
      atVersion: async (version, statements) => writeRowsAtVersion(raw, new RedisKeys(prefix), version, statements),
    };
  },
});

describe('redis cluster specifics', () => {
  it('keeps the SQL stores\' schema numbering (the shared suite builds old databases by version)', () => {
    expect(REDIS_SCHEMA_VERSION).toBe(SQLITE_MIGRATIONS.length);
  });
});
