import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { catalog, type Catalog, refusal, T0 } from './catalog.js';

describe('apps (fixed clock, SQLite store)', () => {
  let t: Catalog;
  beforeEach(async () => {
    t = await catalog();
  });
  afterEach(() => t.close());

  describe('creation', () => {
    it('a new app is native and public by default, with the native policy, one active signing key and an app key', async () => {
      const { app, appKey, appKeyId } = await t.apps.create({ name: 'shop' });
      expect(app).toMatchObject({ name: 'shop', profile: 'native', public: true, description: '', createdAt: T0, updatedAt: T0 });
      expect(app.policy).toMatchObject({ accessTtl: 900, alg: 'ES256' });
      expect(app.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(appKey).toContain(appKeyId);
      const keys = await t.apps.listKeys('shop');
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatchObject({ appId: app.id, alg: 'ES256', state: 'active', createdAt: T0 });
    });

    it('the policy given at creation is validated and applied over the profile\'s defaults', async () => {
      const { app } = await t.apps.create({ name: 'shop', policy: { accessTtl: 60, alg: 'EdDSA' } });
      expect(app.policy).toMatchObject({ accessTtl: 60, alg: 'EdDSA', reuseGrace: 10 });
      expect((await t.apps.listKeys(app.id))[0]?.alg).toBe('EdDSA');
      expect(await refusal(t.apps.create({ name: 'bad', policy: { accessTtl: -1 } }))).toBe('invalid_request');
      expect(await refusal(t.apps.get('bad'))).toBe('app_not_found'); // nothing was written
    });

    it('names are [a-z0-9][a-z0-9_-]{0,62} and never a ULID', async () => {
      const ulid = '01JSEEDEDSEEDEDSEEDEDSEEDE';
      for (const name of ['Shop', '-shop', 'shop app', '', 'a'.repeat(64), ulid, 42, undefined]) {
        expect(await refusal(t.apps.create({ name }), true)).toBe('invalid_request: name must match [a-z0-9][a-z0-9_-]{0,62} and must not be a ULID');
      }
      expect((await t.apps.create({ name: 'a'.repeat(63) })).app.name).toHaveLength(63);
    });

    it('a second app of the same name is a conflict', async () => {
      await t.apps.create({ name: 'shop' });
      expect(await refusal(t.apps.create({ name: 'shop' }), true)).toBe('conflict: an app named "shop" already exists');
      expect(await t.apps.list()).toHaveLength(1);
    });

    it('an unknown profile, a non-boolean public and a description over 1024 characters are refused', async () => {
      expect(await refusal(t.apps.create({ name: 'a', profile: 'oauth' }))).toBe('invalid_request');
      expect(await refusal(t.apps.create({ name: 'b', public: 'no' }), true)).toBe('invalid_request: public must be true or false');
      expect(await refusal(t.apps.create({ name: 'c', description: 'x'.repeat(1025) }))).toBe('invalid_request');
      expect((await t.apps.create({ name: 'd', description: 'x'.repeat(1024) })).app.description).toHaveLength(1024);
    });
  });

  describe('confidential and public', () => {
    it('a native app may be confidential', async () => {
      expect((await t.apps.create({ name: 'backend', public: false })).app.public).toBe(false);
    });

    it('an app whose renewal call carries no client authentication cannot be confidential, at creation or by an update', async () => {
      expect(await refusal(t.apps.create({ name: 'legacy', profile: 'flolive', public: false }))).toBe('invalid_request');
      const { app } = await t.apps.create({ name: 'legacy', profile: 'flolive' });
      expect(app.public).toBe(true);
      expect(await refusal(t.apps.update(app.id, { public: false }))).toBe('invalid_request');
      expect((await t.apps.get(app.id)).public).toBe(true);
    });

    it('a native app can be switched between public and confidential', async () => {
      const { app } = await t.apps.create({ name: 'shop' });
      expect((await t.apps.update('shop', { public: false })).public).toBe(false);
      expect((await t.apps.update(app.id, { public: true })).public).toBe(true);
    });
  });

  describe('app keys', () => {
    it('the app key authenticates its own app', async () => {
      const { app, appKey } = await t.apps.create({ name: 'shop' });
      expect((await t.apps.authenticate(appKey)).id).toBe(app.id);
      expect((await t.apps.authenticate(appKey, app)).id).toBe(app.id);
    });

    it('a wrong, malformed, missing or other app\'s key is the one same invalid_app_key', async () => {
      const { app, appKey } = await t.apps.create({ name: 'shop' });
      const other = await t.apps.create({ name: 'payments' });
      const tampered = appKey.slice(0, -4) + (appKey.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      for (const key of [tampered, 'not-a-key', '', null, undefined, 42]) {
        expect(await refusal(t.apps.authenticate(key), true)).toBe('invalid_app_key: the app key is missing, wrong or revoked');
      }
      expect(await refusal(t.apps.authenticate(other.appKey, app), true)).toBe('invalid_app_key: the app key is missing, wrong or revoked');
    });

    it('a revoked key no longer authenticates; the app\'s other keys still do', async () => {
      const { app, appKey, appKeyId } = await t.apps.create({ name: 'shop' });
      const second = await t.apps.createAppKey('shop');
      expect((await t.apps.authenticate(second.appKey, app)).id).toBe(app.id);
      await t.apps.revokeAppKey('shop', appKeyId);
      expect(await refusal(t.apps.authenticate(appKey))).toBe('invalid_app_key');
      expect((await t.apps.authenticate(second.appKey)).id).toBe(app.id);
      expect(await refusal(t.apps.revokeAppKey('shop', appKeyId), true)).toBe('not_found: no live app key has that id');
    });
  });

  describe('finding and updating', () => {
    it('an app is found by name or by id in any letter case; anything else is app_not_found without a store read', async () => {
      const { app } = await t.apps.create({ name: 'shop' });
      expect((await t.apps.get('shop')).id).toBe(app.id);
      expect((await t.apps.get(app.id.toLowerCase())).id).toBe(app.id);
      expect(await t.apps.idOf('nope')).toBeNull();
      for (const ref of ['Shop', 'shop\u0000', '', 'x'.repeat(65), 7, null]) expect(await refusal(t.apps.get(ref))).toBe('app_not_found');
    });

    it('an update validates the patched policy against the app as stored, and moves updatedAt strictly forward', async () => {
      const { app } = await t.apps.create({ name: 'shop' });
      const updated = await t.apps.update('shop', { policy: { reuseGrace: 0 }, description: 'store front' });
      expect(updated).toMatchObject({ description: 'store front', policy: { reuseGrace: 0, accessTtl: 900 } });
      expect(updated.updatedAt).toBeGreaterThan(app.updatedAt); // the clock has not moved
      expect(await refusal(t.apps.update('shop', { policy: { refreshTtl: 60, refreshNotBefore: 60 } }))).toBe('invalid_request');
      expect((await t.apps.get(app.id)).policy.refreshTtl).toBe(30 * 86400);
    });

    it('a dialect app stored with dpopNonce true (before that was refused) reads as false, and its next update is accepted', async () => {
      const { app } = await t.apps.create({ name: 'abit', profile: 'abitmedia' });
      // Written behind the domain's back, as a release that did not refuse it would have.
      expect((await t.store.updateApp({ ...app, policy: { ...app.policy, dpopNonce: true } }, app.updatedAt)).updated).toBe(true);
      expect((await t.store.findApp({ id: app.id }))?.policy.dpopNonce).toBe(true);
      expect((await t.apps.get(app.id)).policy.dpopNonce).toBe(false);
      expect((await t.apps.list()).find((a) => a.id === app.id)?.policy.dpopNonce).toBe(false);
      const updated = await t.apps.update('abit', { description: 'renamed nothing' });
      expect(updated.policy.dpopNonce).toBe(false);
      expect((await t.store.findApp({ id: app.id }))?.policy.dpopNonce).toBe(false);
      // A native app's value is its own.
      const native = (await t.apps.create({ name: 'shop', policy: { dpopNonce: true } })).app;
      expect((await t.apps.get(native.id)).policy.dpopNonce).toBe(true);
    });

    it('renaming to a taken name is a conflict; a deleted app is gone with its keys', async () => {
      await t.apps.create({ name: 'shop' });
      const { app, appKey } = await t.apps.create({ name: 'payments' });
      expect(await refusal(t.apps.update('payments', { name: 'shop' }))).toBe('conflict');
      await t.apps.delete('payments');
      expect(await refusal(t.apps.get(app.id))).toBe('app_not_found');
      expect(await refusal(t.apps.authenticate(appKey))).toBe('invalid_app_key');
    });

    it('a key rotation and revocation through the app emit key_rotated and key_revoked with ids only', async () => {
      const { app } = await t.apps.create({ name: 'shop' });
      const [first] = await t.apps.listKeys('shop');
      const next = await t.apps.rotateKey('shop');
      expect(next.kid).not.toBe(first?.kid);
      await t.apps.revokeKey('shop', first?.kid);
      expect(await refusal(t.apps.revokeKey('shop', first?.kid))).toBe('not_found');
      expect(t.events).toEqual([
        { event: 'key_rotated', fields: { appId: app.id, kid: next.kid, previousKid: first?.kid } },
        { event: 'key_revoked', fields: { appId: app.id, kid: first?.kid } },
      ]);
    });
  });
});
