import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys, RedisStore, REDIS_SCHEMA_VERSION } from '../../src/store/redis/redis_store.js';
import { BUCKETS } from '../../src/store/redis/keys.js';
import { dialectDomains } from '../../src/dialects/index.js';
import { parseRedisClusterUrl } from '../../src/config/redis_url.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis_cluster.js';
import { writeRowsAtVersion } from '../helpers/redis_rows.js';
import { StoreUnavailableError } from '../../src/domain/errors.js';
import { MasterKey } from '../../src/crypto/master_key.js';
import { systemClock } from '../../src/domain/clock.js';
import { Rotor } from '../../src/domain/rotor.js';
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
  clock: true,
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
  it('a rotation its replica did not acknowledge in time is 503 and stays unconfirmed (its parent redeemable) until a later rotation is confirmed', async () => {
    const prefix = `u${randomBytes(4).toString('hex')}`;
    const store = storeFor(prefix, '&minReplicas=1&waitMs=100');
    try {
      await store.migrate();
      const app = appRecord();
      await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const session = sessionRecord(app.id, 'paused');
      await store.issueSession({ session, newSubjectClaims: {} });
      // Stop the replica of the session's master: the master applies the rotation, WAIT gives up.
      const replica = await cluster.replicaOf(await cluster.masterOf(slotOf(`${store.keys.subject(app.id, 'paused')}u`)));
      const rotation = { sessionId: session.id, expectGeneration: 1, next: chainRecord(2), now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0 };
      cluster.pause(replica);
      try {
        await expect(store.rotateSession(rotation)).rejects.toBeInstanceOf(StoreUnavailableError);
        const found = await store.findSession(session.id);
        expect(found?.session.refresh?.generation).toBe(2);
        expect(found?.rotation).toBe('unconfirmed');
        await expect(store.confirmRotation(session.id, 2)).rejects.toBeInstanceOf(StoreUnavailableError);
      } finally {
        cluster.resume(replica);
      }
      // A retry's confirmation makes generation 2 durable but leaves the mark: that retry's answer may be lost too.
      await store.confirmRotation(session.id, 2);
      await store.confirmRotation(session.id, 2);
      await new Promise((r) => setTimeout(r, 50));
      expect((await store.findSession(session.id))?.rotation).toBe('unconfirmed');
      // A later rotation, confirmed by its own WAIT, clears it: nothing pending.
      expect(await store.rotateSession({ ...rotation, expectGeneration: 2, next: chainRecord(3) })).toEqual({ rotated: true });
      await new Promise((r) => setTimeout(r, 50));
      const after = await store.findSession(session.id);
      expect(after?.session.refresh?.generation).toBe(3);
      expect(after?.rotation).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('a rotation sent to a master that stopped answering is 503 within the deadline; run late when the master wakes, it is unconfirmed at once (never in flight)', async () => {
    const prefix = `l${randomBytes(4).toString('hex')}`;
    const store = new RedisStore({ ...parseRedisClusterUrl(cluster.url(`prefix=${prefix}&minReplicas=1&waitMs=100`)), timeoutMs: 600 });
    try {
      await store.migrate();
      const app = appRecord();
      await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const session = sessionRecord(app.id, 'late');
      await store.issueSession({ session, newSubjectClaims: {} });
      expect(await store.findSession(session.id)).not.toBeNull();
      const master = await cluster.masterOf(slotOf(`${store.keys.subject(app.id, 'late')}u`));
      const rotation = { sessionId: session.id, expectGeneration: 1, next: chainRecord(2), now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0 };
      // One confirmed rotation first: the late one below is the next.
      expect(await store.rotateSession(rotation)).toEqual({ rotated: true });
      // Well under cluster-node-timeout (1 s): the master is paused, not failed over.
      cluster.pause(master);
      const started = Date.now();
      try {
        await expect(store.rotateSession({ ...rotation, expectGeneration: 2, next: chainRecord(3) })).rejects.toBeInstanceOf(StoreUnavailableError);
      } finally {
        cluster.resume(master);
      }
      const took = Date.now() - started;
      expect(took).toBeLessThan(1000);
      // The script waited in the master's socket and ran on SIGCONT, after its caller had been answered 503.
      let found = await store.findSession(session.id);
      for (let i = 0; i < 80 && found?.session.refresh?.generation !== 3; i += 1) {
        await new Promise((r) => setTimeout(r, 25));
        found = await store.findSession(session.id);
      }
      expect(found?.session.refresh?.generation).toBe(3);
      expect(found?.rotation).toBe('unconfirmed');
    } finally {
      await store.close();
    }
  });

  it('SPEC §7 through the engine: with reuseGrace 0, a refresh answered 503 (replica silent) is retried, again and again, for the same successor until a later rotation is confirmed; then the parent is reuse', async () => {
    const prefix = `e${randomBytes(4).toString('hex')}`;
    // A generous wait: only the stopped replica's silence may time out, not a loaded machine.
    const store = storeFor(prefix, '&minReplicas=1&waitMs=1000');
    const rotor = new Rotor({ store, masterKey: MasterKey.random(), clock: systemClock, issuer: 'http://rotor.test', dialects: dialectDomains() });
    try {
      await store.migrate();
      const { app } = await rotor.apps.create({ name: 'strict', policy: { reuseGrace: 0 } });
      const first = await rotor.issueSession(app, { subject: 'walt' });
      const replica = await cluster.replicaOf(await cluster.masterOf(slotOf(`${store.keys.subject(app.id, 'walt')}u`)));
      cluster.pause(replica);
      try {
        await expect(rotor.refresh(first.refreshToken!)).rejects.toMatchObject({ code: 'store_unavailable' });
        // Still unconfirmable while the replica is silent: 503 again, never reuse.
        await expect(rotor.refresh(first.refreshToken!)).rejects.toMatchObject({ code: 'store_unavailable' });
      } finally {
        cluster.resume(replica);
      }
      // The client saw a 503 and retries with the same token: the rotation it never received, once confirmed.
      const retried = await rotor.refresh(first.refreshToken!);
      expect(retried.refreshToken).toMatch(/^rt_/);
      // It lost that answer too and retries once more, far outside any grace window: the identical successor.
      const again = await rotor.refresh(first.refreshToken!);
      expect(again.refreshToken).toBe(retried.refreshToken);
      // The successor goes on like any other; its rotation is confirmed by its own WAIT.
      const onward = await rotor.refresh(retried.refreshToken!);
      expect(onward.refreshToken).not.toBe(retried.refreshToken);
      // Now the old parent is an ordinary ancestor: with grace 0, reuse, and the session dies.
      const reused = await rotor.refresh(first.refreshToken!).catch((err: unknown) => err);
      expect(reused).toMatchObject({ code: 'invalid_refresh_token', reason: 'reused' });
      const dead = await rotor.refresh(onward.refreshToken!).catch((err: unknown) => err);
      expect(dead).toMatchObject({ code: 'invalid_refresh_token' });
      const found = await store.findSession(first.session.id);
      expect(found?.session.revokeReason).toBeTruthy();
      expect(found?.session.revokedAt).toEqual(expect.any(Number));
    } finally {
      await store.close();
    }
  });

  it('prune reads only what is due through its index: deletes expired and long-revoked sessions, leaves live ones, never scans, and the index holds exactly the sessions that remain', async () => {
    const prefix = `p${randomBytes(4).toString('hex')}`;
    const store = storeFor(prefix);
    const keys = new RedisKeys(prefix);
    const HOUR = 3_600_000;
    const now = Date.now();
    const retention = 24 * HOUR;
    try {
      await store.migrate();
      const app = appRecord();
      await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const issue = async (subject: string, horizonAt: number) => {
        const session = sessionRecord(app.id, subject, { horizonAt });
        await store.issueSession({ session, newSubjectClaims: {} });
        return session;
      };
      const live = await Promise.all(Array.from({ length: 20 }, (_, i) => issue(`live-${i}`, now + HOUR)));
      const expired = await Promise.all(Array.from({ length: 10 }, (_, i) => issue(`old-${i}`, now - retention - 1)));
      const revoked = await Promise.all(Array.from({ length: 5 }, (_, i) => issue(`gone-${i}`, now + 100 * HOUR)));
      for (const s of revoked) await store.revokeSession(s.id, 'logout', now - retention - 1);
      // A live session whose entry is early (as if its horizon grew without the entry following): kept, its entry moved on.
      const grown = await issue('grown', now + 10 * HOUR);
      const grownKey = `${keys.subject(app.id, 'grown')}s:${grown.id}`;
      await raw.zadd(keys.expiries(keys.bucketOf(grownKey)), now - retention - 5, grownKey);
      // An entry whose session is not there: dropped.
      const strayKey = `${keys.subject(app.id, 'nobody')}s:01ARZ3NDEKTSV4RRFFQ69G5FAV`;
      await raw.zadd(keys.expiries(keys.bucketOf(strayKey)), now - retention - 5, strayKey);

      const entries = async () => {
        let n = 0;
        for (let b = 0; b < BUCKETS; b += 1) n += await raw.zcard(keys.expiries(keys.bucket(b)));
        return n;
      };
      const scans = async () => {
        let n = 0;
        for (const { port } of await cluster.masters()) n += Number(/cmdstat_scan:calls=(\d+)/.exec(await cluster.cli(port, 'INFO', 'commandstats'))?.[1] ?? 0);
        return n;
      };
      expect(await entries()).toBe(20 + 10 + 5 + 1 + 1);
      const scansBefore = await scans();
      expect(await store.prune(now, { revokedRetention: retention })).toEqual({ sessions: 15, refreshTokens: 0 });
      expect(await scans()).toBe(scansBefore);
      for (const s of [...expired, ...revoked]) expect(await store.findSession(s.id)).toBeNull();
      for (const s of [...live, grown]) expect((await store.findSession(s.id))?.session.revokedAt).toBeNull();
      // Bounded: one entry per remaining session, the grown one now at its real horizon.
      expect(await entries()).toBe(21);
      expect(Number(await raw.zscore(keys.expiries(keys.bucketOf(grownKey)), grownKey))).toBe(grown.horizonAt);
      // Rotations move a session's entry with its horizon and add none.
      expect(await store.rotateSession({ sessionId: live[0]!.id, expectGeneration: 1, next: chainRecord(2), now, lastIp: null, lastUserAgent: null, horizonAt: now + 5 * HOUR })).toEqual({ rotated: true });
      expect(await entries()).toBe(21);
      expect(await store.prune(now, { revokedRetention: retention })).toEqual({ sessions: 0, refreshTokens: 0 });
      // The pointers of pruned sessions went with them.
      expect(await raw.exists(keys.sessionIndex(expired[0]!.id))).toBe(0);
      expect(await raw.exists(keys.sessionIndex(live[0]!.id))).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('a deleted app\'s sessions and subjects are pruned through its own lists', async () => {
    const prefix = `d${randomBytes(4).toString('hex')}`;
    const store = storeFor(prefix);
    const keys = new RedisKeys(prefix);
    try {
      await store.migrate();
      const app = appRecord();
      await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      const sessions = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
        const session = sessionRecord(app.id, `s-${i}`, { horizonAt: Date.now() + 3_600_000 });
        await store.issueSession({ session, newSubjectClaims: {} });
        return session;
      }));
      expect(await store.deleteApp(app.id)).toBe(true);
      expect(await store.prune(Date.now(), { revokedRetention: 0 })).toEqual({ sessions: 6, refreshTokens: 0 });
      for (const [i, s] of sessions.entries()) {
        expect(await raw.exists(`${keys.subject(app.id, `s-${i}`)}s:${s.id}`)).toBe(0);
        expect(await raw.exists(`${keys.subject(app.id, `s-${i}`)}u`)).toBe(0);
      }
      expect(await raw.smembers(`${keys.dir}gone`)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('keeps the SQL stores\' schema numbering (the shared suite builds old databases by version)', () => {
    expect(REDIS_SCHEMA_VERSION).toBe(SQLITE_MIGRATIONS.length);
  });
});
