import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys, RedisStore, REDIS_SCHEMA_VERSION } from '../../src/store/redis/redis_store.js';
import { parseRedisClusterUrl } from '../../src/config/redis_url.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis_cluster.js';
import { writeRowsAtVersion } from '../helpers/redis_rows.js';
import { StoreUnavailableError } from '../../src/domain/errors.js';
import { MasterKey } from '../../src/crypto/master_key.js';
import { systemClock } from '../../src/domain/clock.js';
import { Rotor } from '../../src/domain/rotor.js';
import { dialectDomains } from '../../src/dialects/index.js';
import { slotOf } from '../../src/store/redis/router.js';
import { appKeyRecord, appRecord, chainRecord, describeStoreConformance, sessionRecord, signingKeyRecord } from './conformance.js';

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
  it('a rotation its replica did not acknowledge in time is 503 and stays unconfirmed (its parent redeemable) until confirmRotation', async () => {
    const prefix = `u${randomBytes(4).toString('hex')}`;
    const store = storeFor(prefix, '&minReplicas=1&waitMs=100');
    try {
      await store.migrate();
      const app = appRecord();
      await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const session = sessionRecord(app.id, 'paused');
      await store.issueSession({ session, newSubjectClaims: {} });
      // Stop the replica of the session's master: the master applies the rotation, WAIT gives up.
      const master = await cluster.masterOf(slotOf(`${store.keys.subject(app.id, 'paused')}u`));
      const nodes = await cluster.cli(master, 'CLUSTER', 'NODES');
      const masterId = nodes.split('\n').find((l) => l.includes('myself'))!.split(' ')[0]!;
      const replicaPort = Number(nodes.split('\n').find((l) => l.includes(`slave ${masterId}`))!.split(' ')[1]!.split(':')[1]!.split('@')[0]);
      const replica = cluster.nodes.find((n) => n.port === replicaPort)!.process!;
      const rotation = { sessionId: session.id, expectGeneration: 1, next: chainRecord(2), now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0 };
      replica.kill('SIGSTOP');
      try {
        await expect(store.rotateSession(rotation)).rejects.toBeInstanceOf(StoreUnavailableError);
        const found = await store.findSession(session.id);
        expect(found?.session.refresh?.generation).toBe(2);
        expect(found?.rotation).toBe('unconfirmed');
        await expect(store.confirmRotation(session.id, 2)).rejects.toBeInstanceOf(StoreUnavailableError);
      } finally {
        replica.kill('SIGCONT');
      }
      await store.confirmRotation(session.id, 2);
      await new Promise((r) => setTimeout(r, 50));
      expect((await store.findSession(session.id))?.rotation).toBeUndefined();
      // A confirmed rotation is not pending: the next one answers at once.
      expect(await store.rotateSession({ ...rotation, expectGeneration: 2, next: chainRecord(3) })).toEqual({ rotated: true });
      expect((await store.findSession(session.id))?.rotation).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('SPEC §7 through the engine: with reuseGrace 0, a refresh answered 503 (replica silent) is retried by the client and gets the same successor, not reuse', async () => {
    const prefix = `e${randomBytes(4).toString('hex')}`;
    // A generous wait: only the stopped replica's silence may time out, not a loaded machine.
    const store = storeFor(prefix, '&minReplicas=1&waitMs=1000');
    const rotor = new Rotor({ store, masterKey: MasterKey.random(), clock: systemClock, issuer: 'http://rotor.test', dialects: dialectDomains() });
    try {
      await store.migrate();
      const { app } = await rotor.apps.create({ name: 'strict', policy: { reuseGrace: 0 } });
      const first = await rotor.issueSession(app, { subject: 'walt' });
      const master = await cluster.masterOf(slotOf(`${store.keys.subject(app.id, 'walt')}u`));
      const nodes = await cluster.cli(master, 'CLUSTER', 'NODES');
      const masterId = nodes.split('\n').find((l) => l.includes('myself'))!.split(' ')[0]!;
      const replicaPort = Number(nodes.split('\n').find((l) => l.includes(`slave ${masterId}`))!.split(' ')[1]!.split(':')[1]!.split('@')[0]);
      const replica = cluster.nodes.find((n) => n.port === replicaPort)!.process!;
      replica.kill('SIGSTOP');
      try {
        await expect(rotor.refresh(first.refreshToken!)).rejects.toMatchObject({ code: 'store_unavailable' });
      } finally {
        replica.kill('SIGCONT');
      }
      // The client saw a 503 and retries with the same token: the rotation it never received, once confirmed.
      const retried = await rotor.refresh(first.refreshToken!);
      expect(retried.refreshToken).toMatch(/^rt_/);
      // The successor it handed out is durable now, and goes on like any other.
      const onward = await rotor.refresh(retried.refreshToken!);
      expect(onward.refreshToken).not.toBe(retried.refreshToken);
      // The old parent is an ordinary ancestor again: with grace 0, reuse.
      const again = await rotor.refresh(first.refreshToken!).catch((err: unknown) => err);
      expect(again).toMatchObject({ code: 'invalid_refresh_token', reason: 'reused' });
    } finally {
      await store.close();
    }
  });

  it('keeps the SQL stores\' schema numbering (the shared suite builds old databases by version)', () => {
    expect(REDIS_SCHEMA_VERSION).toBe(SQLITE_MIGRATIONS.length);
  });
});
