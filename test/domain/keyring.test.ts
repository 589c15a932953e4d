import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MasterKey } from '../../src/crypto/master_key.js';
import { isUsableForVerification, Keyring } from '../../src/domain/keyring.js';
import type { App, SigningKeyRecord } from '../../src/domain/types.js';
import { catalog, type Catalog, profiles, T0 } from './catalog.js';

const DATA = Buffer.from('header.payload');

describe('keyring (fixed clock, SQLite store)', () => {
  let t: Catalog;
  let app: App;
  const keys = () => t.apps.listKeys(app.id);
  const byKid = async (kid: string) => (await keys()).find((k) => k.kid === kid) as SigningKeyRecord;
  /** Whether `kid` of the app verifies a signature made with it now (null: the keyring no longer offers it). */
  const verifies = async (kid: string, signature: Buffer, appId = app.id) => (await t.keyring.verificationKey(appId, kid))?.verify(DATA, signature) ?? null;

  beforeEach(async () => {
    t = await catalog();
    app = (await t.apps.create({ name: 'shop', policy: { accessTtl: 600, keyRotationPeriod: 3600 } })).app;
  });
  afterEach(() => t.close());

  it('the key made with the app signs, and verifies what it signed', async () => {
    const [created] = await keys();
    const active = await t.keyring.activeKey(app);
    expect(active.kid).toBe(created?.kid);
    expect(active.alg).toBe('ES256');
    expect(await verifies(active.kid, active.sign(DATA))).toBe(true);
    expect(await keys()).toHaveLength(1);
  });

  it('rotation by period: the same key signs until keyRotationPeriod has passed to the second, then a new one', async () => {
    const first = await t.keyring.activeKey(app);
    t.clock.advance(3599);
    expect((await t.keyring.activeKey(app)).kid).toBe(first.kid);
    t.clock.advance(1);
    const second = await t.keyring.activeKey(app);
    expect(second.kid).not.toBe(first.kid);
    expect((await byKid(first.kid)).state).toBe('retiring');
    expect((await byKid(second.kid)).state).toBe('active');
  });

  it('a retired key verifies until the longest token it signed has expired (accessTtl + 60 s), then never again', async () => {
    const first = await t.keyring.activeKey(app);
    const signature = first.sign(DATA);
    t.clock.advance(3600);
    const second = await t.keyring.activeKey(app);
    const retiredAt = T0 + 3600 * 1000;
    expect(await byKid(first.kid)).toMatchObject({ state: 'retiring', retiredAt, publishUntil: retiredAt + (600 + 60) * 1000 });
    // New tokens are signed by the new key only; the old one still verifies the ones it signed.
    expect((await t.keyring.activeKey(app)).kid).toBe(second.kid);
    t.clock.advance(659);
    expect(await verifies(first.kid, signature)).toBe(true);
    t.clock.advance(1);
    expect(await verifies(first.kid, signature)).toBeNull();
    expect(await verifies(second.kid, second.sign(DATA))).toBe(true);
  });

  it('concurrent requests that find the key stale make one new key between them', async () => {
    t.clock.advance(3600);
    const kids = new Set((await Promise.all(Array.from({ length: 8 }, () => t.keyring.activeKey(app)))).map((k) => k.kid));
    expect(kids.size).toBe(1);
    expect(await keys()).toHaveLength(2);
  });

  it('a rotation that expects another active key than the stored one loses the race and changes nothing', async () => {
    const first = await t.keyring.activeKey(app);
    await t.keyring.rotate(app, first.kid);
    await t.keyring.rotate(app, first.kid); // a second instance that read the same active key
    expect(await keys()).toHaveLength(2);
    expect((await keys()).filter((k) => k.state === 'active')).toHaveLength(1);
  });

  it('a revoked key verifies nothing from the moment revoke returns, cached or not', async () => {
    const first = await t.keyring.activeKey(app);
    const signature = first.sign(DATA);
    expect(await t.keyring.verificationKey(app.id, first.kid, 'cached')).not.toBeNull();
    expect(await t.keyring.revoke(app.id, first.kid)).toBe(true);
    expect(await t.keyring.verificationKey(app.id, first.kid, 'cached')).toBeNull();
    expect(await verifies(first.kid, signature)).toBeNull();
    expect(await t.keyring.revoke(app.id, first.kid)).toBe(false); // already revoked
    // With no active key left, the next token is signed by a new one.
    const next = await t.keyring.activeKey(app);
    expect(next.kid).not.toBe(first.kid);
    expect((await byKid(first.kid)).state).toBe('revoked');
  });

  it('a retiring key that is revoked stops verifying before its publication ends', async () => {
    const first = await t.keyring.activeKey(app);
    const signature = first.sign(DATA);
    await t.keyring.rotate(app, first.kid);
    expect(await verifies(first.kid, signature)).toBe(true);
    await t.keyring.revoke(app.id, first.kid);
    expect(await verifies(first.kid, signature)).toBeNull();
  });

  it('a kid is looked up within its app: another app\'s key is unknown here', async () => {
    const other = (await t.apps.create({ name: 'payments' })).app;
    const theirs = await t.keyring.activeKey(other);
    expect(await verifies(theirs.kid, theirs.sign(DATA), other.id)).toBe(true);
    expect(await verifies(theirs.kid, theirs.sign(DATA), app.id)).toBeNull();
  });

  it('a new algorithm in the policy is taken up by a rotation; the old key keeps verifying its tokens', async () => {
    const first = await t.keyring.activeKey(app);
    const signature = first.sign(DATA);
    const updated = await t.apps.update(app.id, { policy: { alg: 'EdDSA' } });
    const next = await t.keyring.activeKey(updated);
    expect(next.alg).toBe('EdDSA');
    expect(next.kid).not.toBe(first.kid);
    expect(await verifies(first.kid, signature)).toBe(true);
  });

  it('a rotation or revocation by another instance is seen by the next read of the keys version', async () => {
    const elsewhere = new Keyring(t.store, t.masterKey, t.clock, profiles);
    const first = await t.keyring.activeKey(app);
    await elsewhere.rotate(app, first.kid);
    const second = await t.keyring.activeKey(app);
    expect(second.kid).not.toBe(first.kid);
    const before = await t.store.signingKeysVersion(app.id);
    expect(await t.keyring.stillVerifies(app.id, second.kid, before)).toBe(true);
    await elsewhere.revoke(app.id, second.kid);
    const after = await t.store.signingKeysVersion(app.id);
    expect(after).toBeGreaterThan(before);
    expect(await t.keyring.stillVerifies(app.id, second.kid, after)).toBe(false);
  });

  it('opening the published keys refuses a master key that is not the one they were sealed with', async () => {
    expect(await t.keyring.checkPublishedKeys()).toBe(1);
    const wrong = new Keyring(t.store, MasterKey.random(), t.clock, profiles);
    await expect(wrong.checkPublishedKeys()).rejects.toThrow(/the master key does not decrypt signing key/);
  });
});

describe('isUsableForVerification', () => {
  const record = (over: Partial<SigningKeyRecord>) => ({ state: 'active', publishUntil: null, ...over }) as SigningKeyRecord;

  it('active always; retiring only before publishUntil; revoked never', () => {
    expect(isUsableForVerification(record({ state: 'active' }), T0)).toBe(true);
    expect(isUsableForVerification(record({ state: 'retiring', publishUntil: T0 + 1 }), T0)).toBe(true);
    expect(isUsableForVerification(record({ state: 'retiring', publishUntil: T0 }), T0)).toBe(false);
    expect(isUsableForVerification(record({ state: 'retiring', publishUntil: null }), T0)).toBe(false);
    expect(isUsableForVerification(record({ state: 'revoked', publishUntil: T0 + 1000 }), T0)).toBe(false);
  });
});
