import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MasterKey } from '../../src/crypto/master_key.js';
import { FixedClock, type Clock } from '../../src/domain/clock.js';
import { RotorError } from '../../src/domain/errors.js';
import { Rotor } from '../../src/domain/rotor.js';
import { dialectDomains } from '../../src/dialects/index.js';
import { PostgresStore } from '../../src/store/postgres/postgres_store.js';
import { StoreClock } from '../../src/store/store_clock.js';
import { createTestSchema } from './pg_harness.js';

describe('StoreClock: the host\'s clock corrected to the store\'s', () => {
  it('takes the offset from the middle of the quicker of two round trips, keeps the last one while the store cannot be read, ignores noise', async () => {
    const base = new FixedClock(1_000_000);
    const storeAhead = 30_000; // the store is 30 s ahead of this host
    let fail = false;
    let trips = [50, 10]; // the first sample opens a connection
    const clock = new StoreClock(base, async () => {
      if (fail) throw new Error('down');
      const sentAt = base.now();
      base.advance((trips.shift() ?? 10) / 1000);
      return sentAt + storeAhead + 5; // the store reads its clock a few ms into the trip
    });
    expect(await clock.sync()).toMatchObject({ ok: true });
    expect(clock.isSynced).toBe(true);
    expect(clock.skew).toBe(-30_000); // the 10 ms trip: read 5 ms in, its middle
    expect(clock.now() - base.now()).toBe(30_000);
    fail = true;
    expect(await clock.sync()).toEqual({ ok: false, reason: 'unreadable' });
    expect(clock.now() - base.now()).toBe(30_000);
    fail = false;
    trips = [10, 10];
    const noise = await clock.sync();
    expect(noise).toMatchObject({ ok: true, changedBy: 0 });
  });

  it('a sample slower than two seconds is not used; an offset beyond five minutes is refused as a broken clock', async () => {
    const base = new FixedClock(0);
    const slow = new StoreClock(base, async () => { base.advance(2.5); return base.now(); });
    expect(await slow.sync()).toEqual({ ok: false, reason: 'slow' });
    expect(slow.isSynced).toBe(false);
    const hours = new StoreClock(base, async () => base.now() + 3 * 3_600_000);
    expect(await hours.sync()).toMatchObject({ ok: false, reason: 'implausible' });
    expect(hours.now()).toBe(base.now());
  });
});

/** Real time shifted by `ms`, as a host whose clock is off. */
const shifted = (ms: number): Clock => ({ now: () => Date.now() + ms });

describe('S4-02 instances whose clocks differ keep time by PostgreSQL\'s (SECURITY-CASES F-11)', () => {
  let schema: { url: string; drop(): Promise<void> };
  const stores: PostgresStore[] = [];
  beforeAll(async () => {
    schema = await createTestSchema();
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await schema.drop();
  });

  const masterKey = MasterKey.random();
  const instance = async (clock: (store: PostgresStore) => Promise<Clock>) => {
    const store = new PostgresStore(schema.url, { poolMax: 4 });
    stores.push(store);
    await store.migrate();
    return new Rotor({ store, masterKey, clock: await clock(store), issuer: 'https://rotor.test', dialects: dialectDomains() });
  };
  const synced = (ms: number) => async (store: PostgresStore) => {
    const clock = new StoreClock(shifted(ms), () => store.clockNow());
    expect((await clock.sync()).ok).toBe(true);
    return clock;
  };
  const raw = (ms: number) => async () => shifted(ms);

  it('S4-02 a grace retry judged by an instance 30 s ahead, 0.5 s after another rotated, is a retry (it was reuse)', async () => {
    const a = await instance(synced(0));
    const ahead = await instance(synced(30_000));
    const { app } = await a.apps.create({ name: 'skew', policy: { reuseGrace: 10 } });
    const pair = await a.issueSession(app, { subject: 'alice' });
    const next = await a.refresh(pair.refreshToken);
    await new Promise((r) => setTimeout(r, 500));
    const retry = await ahead.refresh(pair.refreshToken);
    expect(retry.refreshToken).toBe(next.refreshToken);
    expect((await ahead.refresh(next.refreshToken)).session.id).toBe(pair.session.id);
  });

  it('S4-02 (control) the same instances on their own clocks: the retry is taken for reuse', async () => {
    const a = await instance(raw(0));
    const ahead = await instance(raw(30_000));
    const { app } = await a.apps.create({ name: 'skew-raw', policy: { reuseGrace: 10 } });
    const pair = await a.issueSession(app, { subject: 'alice' });
    await a.refresh(pair.refreshToken);
    await expect(ahead.refresh(pair.refreshToken)).rejects.toSatisfy((err: unknown) => err instanceof RotorError && err.reason === 'reused');
  });
});
