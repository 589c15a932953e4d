import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeTime } from 'ulid';
import { RotorError } from '../../src/domain/errors.js';
import { newId } from '../../src/domain/ids.js';
import type { Profile } from '../../src/domain/policy.js';
import { Profiles } from '../../src/domain/profiles.js';
import { dialectDomains } from '../../src/dialects/index.js';

const PROFILES = new Profiles(dialectDomains());
import type { App, AppKeyRecord, RefreshChain, RefreshRecord, Session, SigningKeyRecord, Subject } from '../../src/domain/types.js';
import { UPGRADED, type RotateInput, type Store, type SubjectColumns } from '../../src/domain/store.js';
import { MAX_GRACE_MS, PRUNE_SKEW_MS, SEAL_KEPT_MS } from '../../src/store/rows.js';

/**
 * One database for one test. `open()` returns a new store instance (its own connection or pool) on
 * that same database, so several instances can race; the suite closes every store it opened.
 */
export interface ConformanceDatabase {
  open(): Promise<Store>;
  dispose(): Promise<void>;
  /**
   * A database as an older Rotor left it: applies the store's first `version` migrations (recording
   * them as applied), then runs `statements` (SQL both stores accept).
   */
  atVersion(version: number, statements: string[]): Promise<void>;
}

export interface ConformanceHarness {
  /** A new, empty database (not yet migrated). */
  freshDatabase(): Promise<ConformanceDatabase>;
  /** The store implements the optional `addRateHits` (rate-limit counts pooled across instances). */
  rateHits?: boolean;
  /** The store has a clock of its own (`clockNow`), one for every instance on it. */
  clock?: boolean;
}

const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;

// ── record builders ──────────────────────────────────────────────────────────────────────────────

export function appRecord(overrides: Partial<App> = {}): App {
  const id = newId();
  return {
    id, name: `app-${id.slice(-10).toLowerCase()}`, profile: 'native', public: false, policy: PROFILES.defaults('native'),
    description: '', createdAt: NOW, updatedAt: NOW, ...overrides,
  };
}

export function appKeyRecord(appId: string, overrides: Partial<AppKeyRecord> = {}): AppKeyRecord {
  return { id: newId(), appId, secretHash: randomBytes(32), createdAt: NOW, revokedAt: null, ...overrides };
}

export function signingKeyRecord(appId: string, overrides: Partial<SigningKeyRecord> = {}): SigningKeyRecord {
  return {
    kid: newId(), appId, alg: 'ES256', state: 'active', publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' },
    privateSealed: randomBytes(48), createdAt: NOW, retiredAt: null, publishUntil: null, revokedAt: null, ...overrides,
  };
}

export function sessionRecord(appId: string, subject: string, overrides: Partial<Session> = {}): Session {
  return {
    id: newId(), appId, subject, claims: { role: 'user', z: 1, a: 2 }, audience: null, createdAt: NOW, lastRenewedAt: NOW,
    expiresAt: NOW + 24 * HOUR, ip: '192.0.2.1', userAgent: 'ua/1', lastIp: '192.0.2.1', lastUserAgent: 'ua/1',
    revokedAt: null, revokeReason: null, horizonAt: NOW + HOUR, refresh: chainRecord(1), locator: null, dpopJkt: null, ...overrides,
  };
}

/** Generation `generation` of a chain, minted at NOW + (generation − 1) s. */
export function chainRecord(generation: number, overrides: Partial<RefreshChain> = {}): RefreshChain {
  const issuedAt = NOW + (generation - 1) * 1000;
  return { generation, issuedAt, notBefore: issuedAt, expiresAt: NOW + (generation + 1) * HOUR, successorSealed: null, ...overrides };
}

/** SQL (both stores) writing a session as the release before one-row-per-session did (schema version 4). */
export function legacySessionSql(session: Session): string {
  const text = (v: string | null) => (v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`);
  return `INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
    last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at) VALUES (${text(session.id)}, ${text(session.appId)}, ${text(session.subject)},
    ${text(JSON.stringify(session.claims))}, ${text(session.audience)}, ${session.createdAt}, ${session.lastRenewedAt},
    ${session.expiresAt ?? 'NULL'}, ${text(session.ip)}, ${text(session.userAgent)}, ${text(session.lastIp)}, ${text(session.lastUserAgent)},
    NULL, NULL, ${session.horizonAt})`;
}

/** SQL (both stores) writing a pre-upgrade refresh record; consumed ones name their successor's id. */
export function legacyRefreshSql(r: RefreshRecord): string {
  const text = (v: string | null) => (v === null ? 'NULL' : `'${v}'`);
  return `INSERT INTO refresh_tokens (id, session_id, app_id, parent_id, issued_at, not_before, expires_at, consumed_at, successor_id)
    VALUES (${text(r.id)}, ${text(r.sessionId)}, ${text(r.appId)}, ${text(r.parentId)}, ${r.issuedAt}, ${r.notBefore}, ${r.expiresAt},
    ${r.consumedAt ?? 'NULL'}, ${text(r.successorId)})`;
}

/** A pre-upgrade refresh record (see legacyRefreshSql). */
export function refreshRecordOf(session: Session, overrides: Partial<RefreshRecord> = {}): RefreshRecord {
  return {
    id: createHash('sha256').update(randomBytes(32)).digest('base64url'), sessionId: session.id, appId: session.appId,
    parentId: null, issuedAt: NOW, notBefore: NOW, expiresAt: NOW + HOUR, consumedAt: null, successorId: null,
    successorSealed: null, ...overrides,
  };
}

/** Registers the storage-contract tests for one store. Every store must pass them unchanged. */
export function describeStoreConformance(name: string, harness: ConformanceHarness): void {
  describe(`store conformance: ${name}`, () => {
    let db: ConformanceDatabase;
    let opened: Store[] = [];
    let store: Store;

    /** Another instance on the same database (SQLite: a second connection; PostgreSQL: a second pool). */
    const another = async (): Promise<Store> => {
      const s = await db.open();
      opened.push(s);
      await s.migrate();
      return s;
    };

    beforeEach(async () => {
      db = await harness.freshDatabase();
      opened = [];
      store = await another();
    });

    afterEach(async () => {
      for (const s of opened) await s.close();
      await db.dispose();
    });

    /** Opens the connections of each store (pools start empty) so the racers really overlap. */
    const warm = async (stores: Store[]) => {
      await Promise.all(stores.flatMap((s) => Array.from({ length: 10 }, () => s.findSession('warm-up'))));
    };

    /** An app with its first key and signing key, created through the store. */
    const seedApp = async (s: Store = store, overrides: Partial<App> = {}) => {
      const app = appRecord(overrides);
      const appKey = appKeyRecord(app.id);
      const signingKey = signingKeyRecord(app.id);
      expect(await s.createApp({ app, appKey, signingKey })).toEqual({ created: true });
      return { app, appKey, signingKey };
    };

    /** A session at the first generation of its chain. */
    const seedSession = async (s: Store, appId: string, subject = 'alice', overrides: Partial<Session> = {}) => {
      const session = sessionRecord(appId, subject, overrides);
      const result = await s.issueSession({ session, newSubjectClaims: { email: `${subject}@example.com` } });
      expect(result.issued).toBe(true);
      return { session };
    };

    /** One rotation of `session` from generation `from` to the next (a sealed successor by default). */
    const rotation = (session: Session, from: number, overrides: Partial<RotateInput> = {}): RotateInput => ({
      sessionId: session.id, expectGeneration: from, next: chainRecord(from + 1, { successorSealed: Buffer.from(`sealed-${from + 1}`) }),
      now: NOW + from * 1000, lastIp: '198.51.100.7', lastUserAgent: null, horizonAt: NOW + (from + 2) * HOUR, ...overrides,
    });
    const rotate = (s: Store, session: Session, from: number, overrides: Partial<RotateInput> = {}) => s.rotateSession(rotation(session, from, overrides));

    // ── lifecycle ──────────────────────────────────────────────────────────────────────────────────

    it('migrate is idempotent and safe when several instances start at once', async () => {
      const others = await Promise.all([db.open(), db.open(), db.open()]);
      opened.push(...others);
      await Promise.all([store.migrate(), ...others.map((s) => s.migrate())]);
      await store.migrate();
      const { app } = await seedApp(others[0]);
      expect((await others[2]!.findApp({ id: app.id }))?.name).toBe(app.name);
    });

    it('migration 3 makes the apps of the keyless profiles public; native and jwtplus apps keep their stored flag', async () => {
      const legacy = await harness.freshDatabase();
      try {
        const cases: [Profile, boolean, boolean][] = [
          ['verifik', false, true], ['flolive', false, true], ['fib', false, true], ['abitmedia', false, true], ['verifik', true, true],
          ['native', false, false], ['native', true, true], ['jwtplus', false, false], ['jwtplus', true, true],
        ];
        const apps = cases.map(([profile, isPublic]) => appRecord({ profile, public: isPublic, policy: PROFILES.defaults(profile) }));
        await legacy.atVersion(2, apps.map((a) =>
          `INSERT INTO apps (id, name, profile, public, policy, description, created_at, updated_at)
           VALUES ('${a.id}', '${a.name}', '${a.profile}', ${a.public ? 'TRUE' : 'FALSE'}, '${JSON.stringify(a.policy)}', '', ${NOW}, ${NOW})`));
        const migrated = await legacy.open();
        try {
          await migrated.migrate();
          await migrated.migrate();
          for (const [i, [profile, before, after]] of cases.entries()) {
            const found = await migrated.findApp({ id: apps[i]!.id });
            expect({ profile, before, public: found?.public }).toEqual({ profile, before, public: after });
            // A changed row moves its version (updated_at) on, so an update read before the migration cannot undo it.
            if (before !== after) expect(found!.updatedAt).toBeGreaterThan(NOW);
            else expect(found).toEqual(apps[i]);
          }
        } finally {
          await migrated.close();
        }
      } finally {
        await legacy.dispose();
      }
    });

    it('ping answers while the store is open', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
      expect(['sqlite', 'postgres', 'redis']).toContain(store.kind);
    });

    // ── apps ───────────────────────────────────────────────────────────────────────────────────────

    it('createApp stores the app with its first app key and signing key; a taken name creates nothing', async () => {
      const { app, appKey, signingKey } = await seedApp();
      expect(await store.findApp({ id: app.id })).toEqual(app);
      expect(await store.findApp({ name: app.name })).toEqual(app);
      expect(await store.findAppKey(appKey.id)).toEqual(appKey);
      expect(await store.findSigningKey(signingKey.kid)).toEqual(signingKey);

      const clash = appRecord({ name: app.name });
      const clashKey = appKeyRecord(clash.id);
      const clashSigning = signingKeyRecord(clash.id);
      expect(await store.createApp({ app: clash, appKey: clashKey, signingKey: clashSigning })).toEqual({ created: false });
      expect(await store.findApp({ id: clash.id })).toBeNull();
      expect(await store.findAppKey(clashKey.id)).toBeNull();
      expect(await store.findSigningKey(clashSigning.kid)).toBeNull();
      expect(await store.findApp({ name: 'no-such-app' })).toBeNull();
      expect(await store.findApp({ id: newId() })).toBeNull();
    });

    it('createApp with one name from many instances at once creates exactly one app', async () => {
      const stores = [store, await another()];
      await warm(stores);
      const name = 'contested-name';
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => {
        const app = appRecord({ name });
        return stores[i % 2]!.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
      }));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      const winner = (await store.findApp({ name }))!;
      expect(await store.listAppKeys(winner.id)).toHaveLength(1);
      expect(await store.listSigningKeys(winner.id)).toHaveLength(1);
      expect((await store.listApps()).filter((a) => a.name === name)).toHaveLength(1);
    });

    it('listApps orders by name, byte-wise', async () => {
      for (const n of ['b-app', 'a_app', 'a-app', '0app', 'ab']) await seedApp(store, { name: n });
      expect((await store.listApps()).map((a) => a.name)).toEqual(['0app', 'a-app', 'a_app', 'ab', 'b-app']);
    });

    it('updateApp is a compare-and-set on updated_at: replaces the mutable fields, refuses a stale read and a taken name', async () => {
      const { app } = await seedApp();
      const { app: other } = await seedApp();
      const changed: App = {
        ...app, name: 'renamed', public: true, description: 'new', updatedAt: NOW + 5,
        policy: { ...app.policy, reuseGrace: 0, accessTtl: 60 },
      };
      expect(await store.updateApp(changed, app.updatedAt)).toEqual({ updated: true });
      expect(await store.findApp({ id: app.id })).toEqual(changed);
      // Written from the read before that update: stale, and nothing changes.
      expect(await store.updateApp({ ...app, description: 'lost', updatedAt: NOW + 6 }, app.updatedAt)).toEqual({ updated: false, reason: 'stale' });
      expect(await store.findApp({ id: app.id })).toEqual(changed);
      expect(await store.updateApp({ ...changed, name: other.name, updatedAt: NOW + 7 }, changed.updatedAt)).toEqual({ updated: false, reason: 'name_taken' });
      expect(await store.findApp({ id: app.id })).toEqual(changed);
      const missing = appRecord();
      expect(await store.updateApp(missing, missing.updatedAt)).toEqual({ updated: false, reason: 'stale' });
    });

    it('updateApp racing from two instances: of many compare-and-sets of one version exactly one is written', async () => {
      const { app } = await seedApp();
      const other = await another();
      await warm([store, other]);
      const attempts = Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? other : store).updateApp({ ...app, description: `writer ${i}`, updatedAt: app.updatedAt + 1 }, app.updatedAt));
      const results = await Promise.all(attempts);
      const winners = results.flatMap((r, i) => (r.updated ? [i] : []));
      expect(winners).toHaveLength(1);
      expect(results.filter((r) => !r.updated && r.reason === 'stale')).toHaveLength(19);
      expect((await store.findApp({ id: app.id }))?.description).toBe(`writer ${winners[0]}`);
    });

    it('deleteApp removes the app and everything that belongs to it', async () => {
      const { app, appKey, signingKey } = await seedApp();
      const { session } = await seedSession(store, app.id);
      expect(await store.deleteApp(app.id)).toBe(true);
      expect(await store.deleteApp(app.id)).toBe(false);
      expect(await store.findApp({ id: app.id })).toBeNull();
      expect(await store.findAppKey(appKey.id)).toBeNull();
      expect(await store.findSigningKey(signingKey.kid)).toBeNull();
      expect(await store.findSession(session.id)).toBeNull();
      expect(await store.findSubject(app.id, 'alice')).toBeNull();
    });

    // ── app keys ───────────────────────────────────────────────────────────────────────────────────

    it('app keys: create, find, list in id order, revoke once', async () => {
      const { app, appKey } = await seedApp();
      const second = appKeyRecord(app.id, { createdAt: NOW + 1 });
      await store.createAppKey(second);
      expect(await store.listAppKeys(app.id)).toEqual([appKey, second].sort((a, b) => (a.id < b.id ? -1 : 1)));
      expect(await store.revokeAppKey(app.id, second.id, NOW + 9)).toBe(true);
      expect(await store.revokeAppKey(app.id, second.id, NOW + 10)).toBe(false);
      expect((await store.findAppKey(second.id))?.revokedAt).toBe(NOW + 9);
      const { app: other } = await seedApp();
      expect(await store.revokeAppKey(other.id, appKey.id, NOW)).toBe(false); // another app's key: untouched
      expect((await store.findAppKey(appKey.id))?.revokedAt).toBeNull();
      expect(await store.findAppKey(newId())).toBeNull();
    });

    // ── signing keys ───────────────────────────────────────────────────────────────────────────────

    it('signing keys: rotate retires the active key, publish window, revoke', async () => {
      const { app, signingKey } = await seedApp();
      const next = signingKeyRecord(app.id, { alg: 'EdDSA', publicJwk: { kty: 'OKP', crv: 'Ed25519', x: 'k' }, createdAt: NOW + 1 });
      expect(await store.rotateSigningKey({ appId: app.id, expectActiveKid: signingKey.kid, next, now: NOW + 1, publishUntil: NOW + HOUR }))
        .toEqual({ rotated: true });
      const old = await store.findSigningKey(signingKey.kid);
      expect(old).toMatchObject({ state: 'retiring', retiredAt: NOW + 1, publishUntil: NOW + HOUR });
      expect(await store.findSigningKey(next.kid)).toEqual(next);
      expect((await store.listSigningKeys(app.id)).map((k) => k.kid)).toEqual([signingKey.kid, next.kid].sort());

      const published = async (at: number) => (await store.listPublishedSigningKeys(at)).filter((k) => k.appId === app.id).map((k) => k.kid);
      expect(await published(NOW + 2)).toEqual([signingKey.kid, next.kid].sort());
      expect(await published(NOW + HOUR)).toEqual([next.kid]);

      // A stale expectation loses and changes nothing.
      const stale = signingKeyRecord(app.id);
      expect(await store.rotateSigningKey({ appId: app.id, expectActiveKid: signingKey.kid, next: stale, now: NOW + 2, publishUntil: NOW + HOUR }))
        .toEqual({ rotated: false });
      expect(await store.findSigningKey(stale.kid)).toBeNull();
      // null expectation while a key is active: refused.
      expect(await store.rotateSigningKey({ appId: app.id, expectActiveKid: null, next: stale, now: NOW + 2, publishUntil: NOW + HOUR }))
        .toEqual({ rotated: false });

      expect(await store.revokeSigningKey(app.id, next.kid, NOW + 3)).toBe(true);
      expect(await store.revokeSigningKey(app.id, next.kid, NOW + 4)).toBe(false);
      expect(await store.findSigningKey(next.kid)).toMatchObject({ state: 'revoked', revokedAt: NOW + 3 });
      expect(await published(NOW + 2)).toEqual([signingKey.kid]);
      // No active key any more: a rotation expecting none installs one.
      const fresh = signingKeyRecord(app.id);
      expect(await store.rotateSigningKey({ appId: app.id, expectActiveKid: null, next: fresh, now: NOW + 5, publishUntil: NOW + HOUR }))
        .toEqual({ rotated: true });
      expect((await store.listSigningKeys(app.id)).filter((k) => k.state === 'active').map((k) => k.kid)).toEqual([fresh.kid]);
      expect(await store.findSigningKey(newId())).toBeNull();
    });

    it('S2-13 every change of an app\'s signing keys bumps its version, visible from another instance with the hot queries', async () => {
      const { app, signingKey } = await seedApp();
      const other = await another();
      const session = sessionRecord(app.id, 'vera', { locator: randomBytes(7).toString('hex') });
      await store.issueSession({ session, newSubjectClaims: {} });
      const version = async () => ({
        direct: await other.signingKeysVersion(app.id),
        session: (await other.findSession(session.id))?.keysVersion,
        refresh: (await other.findSessionByLocator(session.locator!))?.keysVersion,
      });
      const v0 = await other.signingKeysVersion(app.id);
      expect(await version()).toEqual({ direct: v0, session: v0, refresh: v0 });
      const next = signingKeyRecord(app.id);
      await store.rotateSigningKey({ appId: app.id, expectActiveKid: signingKey.kid, next, now: NOW + 1, publishUntil: NOW + HOUR });
      expect(await version()).toEqual({ direct: v0 + 1, session: v0 + 1, refresh: v0 + 1 });
      // A rotation that lost changes nothing, so it bumps nothing.
      await store.rotateSigningKey({ appId: app.id, expectActiveKid: signingKey.kid, next: signingKeyRecord(app.id), now: NOW + 2, publishUntil: NOW + HOUR });
      expect((await version()).direct).toBe(v0 + 1);
      expect(await store.revokeSigningKey(app.id, signingKey.kid, NOW + 3)).toBe(true);
      expect(await version()).toEqual({ direct: v0 + 2, session: v0 + 2, refresh: v0 + 2 });
      expect(await store.revokeSigningKey(app.id, signingKey.kid, NOW + 4)).toBe(false);
      expect((await version()).direct).toBe(v0 + 2);
      expect(await other.signingKeysVersion(newId())).toBe(0);
    });

    it('rotateSigningKey racing from two instances: exactly one wins, one active key', async () => {
      const { app, signingKey } = await seedApp();
      const stores = [store, await another()];
      await warm(stores);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 2]!.rotateSigningKey({
        appId: app.id, expectActiveKid: signingKey.kid, next: signingKeyRecord(app.id), now: NOW + 1, publishUntil: NOW + HOUR,
      })));
      expect(results.filter((r) => r.rotated)).toHaveLength(1);
      const keys = await store.listSigningKeys(app.id);
      expect(keys).toHaveLength(2);
      expect(keys.filter((k) => k.state === 'active')).toHaveLength(1);

      // And when no key is active, racing "expect none" rotations also leave exactly one.
      const active = keys.find((k) => k.state === 'active')!;
      await store.revokeSigningKey(app.id, active.kid, NOW + 2);
      await store.revokeSigningKey(app.id, signingKey.kid, NOW + 2);
      const fromNone = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 2]!.rotateSigningKey({
        appId: app.id, expectActiveKid: null, next: signingKeyRecord(app.id), now: NOW + 3, publishUntil: NOW + HOUR,
      })));
      expect(fromNone.filter((r) => r.rotated)).toHaveLength(1);
      expect((await store.listSigningKeys(app.id)).filter((k) => k.state === 'active')).toHaveLength(1);
    });

    // ── subjects ───────────────────────────────────────────────────────────────────────────────────

    it('subjects: patch creates with defaults and changes only the named columns; disabling revokes the sessions; delete revokes them too', async () => {
      const { app } = await seedApp();
      expect(await store.findSubject(app.id, 'bob')).toBeNull();
      const bob: Subject = {
        appId: app.id, subject: 'bob', claims: { role: 'admin', nested: { a: [1, 2] } }, status: 'active', passwordHash: '$argon2id$x',
        ed25519PublicKey: null, createdAt: NOW, updatedAt: NOW,
      };
      const created = await store.patchSubject({
        appId: app.id, subject: 'bob', set: { claims: bob.claims, passwordHash: '$argon2id$x' }, now: NOW,
      });
      expect(created).toEqual({ subject: bob, previousStatus: null });
      expect(await store.findSubject(app.id, 'bob')).toEqual(bob);
      const { session: s1 } = await seedSession(store, app.id, 'bob');
      const { session: s2 } = await seedSession(store, app.id, 'bob');
      const { session: other } = await seedSession(store, app.id, 'carol');

      // Each patch touches its own columns only; created_at is kept.
      const claimsOnly = await store.patchSubject({ appId: app.id, subject: 'bob', set: { claims: { role: 'user' } }, now: NOW + 1 });
      expect(claimsOnly).toEqual({ subject: { ...bob, claims: { role: 'user' }, updatedAt: NOW + 1 }, previousStatus: 'active' });
      const keyed = await store.patchSubject({ appId: app.id, subject: 'bob', set: { passwordHash: null, ed25519PublicKey: 'pk' }, now: NOW + 1 });
      const replaced: Subject = { ...bob, claims: { role: 'user' }, passwordHash: null, ed25519PublicKey: 'pk', updatedAt: NOW + 1 };
      expect(keyed.subject).toEqual(replaced);
      expect(await store.patchSubject({ appId: app.id, subject: 'bob', set: {}, now: NOW + 1 })).toEqual({ subject: replaced, previousStatus: 'active' });
      expect((await store.findSession(s1.id))?.session.revokedAt).toBeNull();

      const disabled = await store.patchSubject({ appId: app.id, subject: 'bob', set: { status: 'disabled' }, now: NOW + 2 });
      expect(disabled).toEqual({ subject: { ...replaced, status: 'disabled', updatedAt: NOW + 2 }, previousStatus: 'active' });
      for (const s of [s1, s2]) {
        const found = await store.findSession(s.id);
        expect(found?.session).toMatchObject({ revokedAt: NOW + 2, revokeReason: 'subject_disabled' });
        expect(found?.subjectStatus).toBe('disabled');
      }
      expect((await store.findSession(other.id))?.session.revokedAt).toBeNull();
      // A patch of another column leaves it disabled.
      const still = await store.patchSubject({ appId: app.id, subject: 'bob', set: { passwordHash: '$argon2id$y' }, now: NOW + 3 });
      expect(still).toEqual({ subject: expect.objectContaining({ status: 'disabled', passwordHash: '$argon2id$y' }), previousStatus: 'disabled' });
      // A subject created disabled.
      expect(await store.patchSubject({ appId: app.id, subject: 'dan', set: { status: 'disabled' }, now: NOW + 3 })).toEqual({
        subject: { appId: app.id, subject: 'dan', claims: {}, status: 'disabled', passwordHash: null, ed25519PublicKey: null, createdAt: NOW + 3, updatedAt: NOW + 3 },
        previousStatus: null,
      });

      const { session: c2 } = await seedSession(store, app.id, 'carol');
      expect(await store.deleteSubject(app.id, 'carol', NOW + 3)).toBe(true);
      expect(await store.deleteSubject(app.id, 'carol', NOW + 4)).toBe(false);
      expect(await store.findSubject(app.id, 'carol')).toBeNull();
      for (const s of [other, c2]) {
        const found = await store.findSession(s.id);
        expect(found?.session).toMatchObject({ revokedAt: NOW + 3, revokeReason: 'subject_deleted' });
        expect(found?.subjectStatus).toBeNull();
      }
    });

    it('patchSubject racing from two instances (and issuances): patches of different columns all survive; the disable ends every session', async () => {
      const { app } = await seedApp();
      const other = await another();
      await warm([store, other]);
      for (let round = 0; round < 10; round += 1) {
        const subject = `racer-${round}`;
        // Odd rounds: the subject does not exist yet, so the patches and the issuances race to create it.
        if (round % 2 === 0) await seedSession(store, app.id, subject);
        const at = NOW + round;
        const patch = (s: Store, set: SubjectColumns) => s.patchSubject({ appId: app.id, subject, set, now: at });
        const issuances = Array.from({ length: 6 }, (_, i) => {
          const session = sessionRecord(app.id, subject);
          return (i % 2 ? other : store).issueSession({ session, newSubjectClaims: {} });
        });
        const patches = [
          patch(store, { passwordHash: `$argon2id$${round}` }),
          patch(other, { status: 'disabled' }),
          patch(store, { claims: { round } }),
          patch(other, { ed25519PublicKey: `pk-${round}` }),
          patch(store, { passwordHash: `$argon2id$${round}` }),
        ];
        const outcomes = await Promise.all(patches);
        await Promise.all(issuances);
        expect(await store.findSubject(app.id, subject)).toMatchObject({
          status: 'disabled', passwordHash: `$argon2id$${round}`, claims: { round }, ed25519PublicKey: `pk-${round}`,
        });
        // Exactly one patch saw the subject go from active to disabled.
        expect(outcomes.filter((o) => o.subject.status === 'disabled' && o.previousStatus !== 'disabled')).toHaveLength(1);
        expect((await store.listSessions(app.id, subject)).filter((s) => s.revokedAt === null)).toEqual([]);
      }
    });

    // ── sessions ───────────────────────────────────────────────────────────────────────────────────

    it('issueSession creates the subject with its first claims, the session and its first refresh token', async () => {
      const { app } = await seedApp();
      const session = sessionRecord(app.id, 'dave', { audience: 'api://x', locator: randomBytes(7).toString('hex') });
      const result = await store.issueSession({ session, newSubjectClaims: { email: 'dave@example.com' } });
      expect(result).toEqual({ issued: true, subject: expect.objectContaining({ subject: 'dave', status: 'active', claims: { email: 'dave@example.com' } }) });
      expect(await store.findSession(session.id)).toEqual({ session, subjectStatus: 'active', keysVersion: 0 });
      expect(await store.findSessionByLocator(session.locator!)).toEqual({ session, subjectStatus: 'active', keysVersion: 0 });

      // An existing subject keeps its claims; a session without refresh tokens has no chain.
      // Sessions list newest first (ULID order); one issued a millisecond later sorts first.
      const second = sessionRecord(app.id, 'dave', { id: newId(decodeTime(session.id) + 1), refresh: null });
      const again = await store.issueSession({ session: second, newSubjectClaims: { email: 'other' } });
      expect(again.issued && again.subject.claims).toEqual({ email: 'dave@example.com' });
      expect((await store.findSession(second.id))?.session.refresh).toBeNull();
      expect((await store.listSessions(app.id, 'dave')).map((s) => s.id)).toEqual([second.id, session.id]);
      expect(await store.findSession(newId())).toBeNull();
      expect(await store.findSessionByLocator('00000000000000')).toBeNull();
    });

    it('issueSession for a disabled subject is refused and writes nothing', async () => {
      const { app } = await seedApp();
      await store.patchSubject({ appId: app.id, subject: 'eve', set: { status: 'disabled' }, now: NOW });
      const session = sessionRecord(app.id, 'eve');
      expect(await store.issueSession({ session, newSubjectClaims: {} })).toEqual({ issued: false, reason: 'subject_disabled' });
      expect(await store.findSession(session.id)).toBeNull();
      expect(await store.listSessions(app.id, 'eve')).toEqual([]);
    });

    it('issueSession racing a disable from another instance leaves no live session of the disabled subject', async () => {
      const { app } = await seedApp();
      const other = await another();
      await warm([store, other]);
      await seedSession(store, app.id, 'frank');
      const issuances = Array.from({ length: 20 }, (_, i) => {
        const session = sessionRecord(app.id, 'frank');
        return (i % 2 ? other : store).issueSession({ session, newSubjectClaims: {} });
      });
      const disable = other.patchSubject({ appId: app.id, subject: 'frank', set: { status: 'disabled' }, now: NOW + 1 });
      const results = await Promise.all([...issuances, disable]);
      const sessions = await store.listSessions(app.id, 'frank');
      expect(sessions.length).toBe(1 + results.filter((r) => r && typeof r === 'object' && 'issued' in r && r.issued).length);
      expect(sessions.filter((s) => s.revokedAt === null)).toEqual([]);
    });

    it('issueSession with revokeOthers revokes the subject\'s other live sessions in the same step', async () => {
      const { app } = await seedApp();
      const { session: old1 } = await seedSession(store, app.id, 'gina');
      const { session: old2 } = await seedSession(store, app.id, 'gina');
      const { session: elsewhere } = await seedSession(store, app.id, 'hank');
      const session = sessionRecord(app.id, 'gina', { createdAt: NOW + 7 });
      await store.issueSession({ session, newSubjectClaims: {}, revokeOthers: 'renewed' });
      for (const s of [old1, old2]) {
        expect((await store.findSession(s.id))?.session).toMatchObject({ revokedAt: NOW + 7, revokeReason: 'renewed' });
      }
      expect((await store.findSession(session.id))?.session.revokedAt).toBeNull();
      expect((await store.findSession(elsewhere.id))?.session.revokedAt).toBeNull();

      // Two concurrent renew-and-revoke issuances: at most one of them stays alive.
      const a = sessionRecord(app.id, 'gina');
      const b = sessionRecord(app.id, 'gina');
      const other = await another();
      await Promise.all([
        store.issueSession({ session: a, newSubjectClaims: {}, revokeOthers: 'renewed' }),
        other.issueSession({ session: b, newSubjectClaims: {}, revokeOthers: 'renewed' }),
      ]);
      expect((await store.listSessions(app.id, 'gina')).filter((s) => s.revokedAt === null)).toHaveLength(1);
    });

    it('revokeSession: true only for the caller whose write revoked it, also under concurrency', async () => {
      const { app } = await seedApp();
      const { session } = await seedSession(store, app.id);
      expect(await store.revokeSession(session.id, 'logout', NOW + 1)).toBe(true);
      expect(await store.revokeSession(session.id, 'logout', NOW + 2)).toBe(false);
      expect((await store.findSession(session.id))?.session).toMatchObject({ revokedAt: NOW + 1, revokeReason: 'logout' });
      expect(await store.revokeSession(newId(), 'logout', NOW)).toBe(false);

      const { session: raced } = await seedSession(store, app.id);
      const stores = [store, await another()];
      await warm(stores);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 2]!.revokeSession(raced.id, `r${i}`, NOW + i)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('revokeSubjectSessions revokes the live sessions of one subject and counts them', async () => {
      const { app } = await seedApp();
      const { session: a } = await seedSession(store, app.id, 'ivy');
      await seedSession(store, app.id, 'ivy');
      await store.revokeSession(a.id, 'logout', NOW);
      const { session: other } = await seedSession(store, app.id, 'jack');
      expect(await store.revokeSubjectSessions(app.id, 'ivy', 'admin', NOW + 1)).toBe(1);
      expect(await store.revokeSubjectSessions(app.id, 'ivy', 'admin', NOW + 2)).toBe(0);
      expect((await store.findSession(a.id))?.session.revokeReason).toBe('logout');
      expect((await store.findSession(other.id))?.session.revokedAt).toBeNull();
    });

    it('touchSession records the renewal of a live session only', async () => {
      const { app } = await seedApp();
      const { session } = await seedSession(store, app.id);
      expect(await store.touchSession({ sessionId: session.id, now: NOW + 5, lastIp: '203.0.113.9', lastUserAgent: null, horizonAt: NOW + 10 })).toBe(true);
      expect((await store.findSession(session.id))?.session).toMatchObject({
        lastRenewedAt: NOW + 5, lastIp: '203.0.113.9', lastUserAgent: 'ua/1', horizonAt: NOW + HOUR, // the horizon never moves back
      });
      await store.touchSession({ sessionId: session.id, now: NOW + 6, lastIp: null, lastUserAgent: 'ua/2', horizonAt: NOW + 3 * HOUR });
      expect((await store.findSession(session.id))?.session).toMatchObject({ lastIp: '203.0.113.9', lastUserAgent: 'ua/2', horizonAt: NOW + 3 * HOUR });
      await store.revokeSession(session.id, 'logout', NOW + 7);
      expect(await store.touchSession({ sessionId: session.id, now: NOW + 8, lastIp: null, lastUserAgent: null, horizonAt: NOW })).toBe(false);
      expect(await store.touchSession({ sessionId: newId(), now: NOW + 8, lastIp: null, lastUserAgent: null, horizonAt: NOW })).toBe(false);

      // Concurrent touches (the SQLite store commits them together): each answers for its own session.
      const others = await Promise.all([1, 2, 3].map((i) => seedSession(store, app.id, `toucher-${i}`)));
      const touched = await Promise.all([session, ...others.map((o) => o.session)].map((s, i) =>
        store.touchSession({ sessionId: s.id, now: NOW + 20 + i, lastIp: `198.51.100.${i}`, lastUserAgent: null, horizonAt: NOW })));
      expect(touched).toEqual([false, true, true, true]);
      expect((await store.findSession(others[2]!.session.id))?.session).toMatchObject({ lastRenewedAt: NOW + 23, lastIp: '198.51.100.3' });
    });

    // ── refresh chains (SPEC §2.9) ─────────────────────────────────────────────────────────────────

    it('rotateSession moves the chain one generation in one compare-and-set; a stale expectation rotates nothing', async () => {
      const { app } = await seedApp();
      const { session } = await seedSession(store, app.id);
      expect(await rotate(store, session, 1)).toEqual({ rotated: true });
      const found = (await store.findSession(session.id))!.session;
      expect(found.refresh).toEqual(rotation(session, 1).next);
      expect(found).toMatchObject({ lastRenewedAt: NOW + 1000, lastIp: '198.51.100.7', lastUserAgent: session.lastUserAgent, horizonAt: NOW + 3 * HOUR });
      // Another rotation of generation 1 loses; the chain goes on from 2.
      expect(await rotate(store, session, 1)).toEqual({ rotated: false });
      expect(await rotate(store, session, 2, { horizonAt: NOW })).toEqual({ rotated: true });
      expect((await store.findSession(session.id))!.session).toMatchObject({ refresh: { generation: 3 }, horizonAt: NOW + 3 * HOUR }); // never moved back
      expect(await rotate(store, { ...session, id: newId() }, 3)).toEqual({ rotated: false });
    });

    it('rotateSession binds an unbound session to a DPoP key once, and never rebinds a bound one', async () => {
      const { app } = await seedApp();
      const { session } = await seedSession(store, app.id);
      expect(await rotate(store, session, 1, { bindJkt: 'first-key' })).toEqual({ rotated: true });
      expect((await store.findSession(session.id))!.session.dpopJkt).toBe('first-key');
      expect(await rotate(store, session, 2, { bindJkt: 'other-key' })).toEqual({ rotated: true });
      expect((await store.findSession(session.id))!.session.dpopJkt).toBe('first-key');
      const { session: bound } = await seedSession(store, app.id, 'bound', { dpopJkt: 'issued-key' });
      expect((await store.findSession(bound.id))!.session.dpopJkt).toBe('issued-key');
    });

    it('useDpopProof: one first use per proof key across instances, pruned after it expires', async () => {
      const other = await another();
      await warm([store, other]);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? store : other).useDpopProof({ key: 'proof-1', expiresAt: NOW + 600_000 })));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.useDpopProof({ key: 'proof-2', expiresAt: NOW + 1000 })).toBe(true);
      // Kept a minute past its expiry: the prune of an instance whose clock runs ahead takes no mark the others still need.
      await store.prune(NOW + 1000 + PRUNE_SKEW_MS - 1000, { revokedRetention: 0 });
      expect(await store.useDpopProof({ key: 'proof-2', expiresAt: NOW + 1000 })).toBe(false);
      await store.prune(NOW + 1000 + PRUNE_SKEW_MS + 1, { revokedRetention: 0 });
      expect(await store.useDpopProof({ key: 'proof-2', expiresAt: NOW + 600_000 })).toBe(true); // pruned: a fresh key again
      expect(await store.useDpopProof({ key: 'proof-1', expiresAt: NOW + 600_000 })).toBe(false); // not yet expired: still a replay
    });

    it('rotateSession records its DPoP proof first: a proof seen before rotates nothing, a lost rotation keeps its proof recorded', async () => {
      const { app } = await seedApp();
      const { session } = await seedSession(store, app.id);
      const proof = (key: string) => ({ dpopProof: { key, expiresAt: NOW + 600_000 } });
      expect(await rotate(store, session, 1, proof('rot-proof-1'))).toEqual({ rotated: true });
      expect(await store.useDpopProof({ key: 'rot-proof-1', expiresAt: NOW + 600_000 })).toBe(false);
      // The same proof again, on the live generation: refused as a replay, and the session does not move.
      expect(await rotate(store, session, 2, proof('rot-proof-1'))).toEqual({ rotated: false, proofReplayed: true });
      expect((await store.findSession(session.id))!.session.refresh?.generation).toBe(2);
      // A proof used on its own first (a retry's answer) is a replay to a rotation too.
      expect(await store.useDpopProof({ key: 'rot-proof-2', expiresAt: NOW + 600_000 })).toBe(true);
      expect(await rotate(store, session, 2, proof('rot-proof-2'))).toEqual({ rotated: false, proofReplayed: true });
      // A stale expectation loses the compare-and-set; its fresh proof is recorded all the same.
      expect(await rotate(store, session, 1, proof('rot-proof-3'))).toEqual({ rotated: false });
      expect(await store.useDpopProof({ key: 'rot-proof-3', expiresAt: NOW + 600_000 })).toBe(false);
      // Concurrent rotations carrying one proof, over two instances: at most one is not a replay.
      const other = await another();
      await warm([store, other]);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? store : other).rotateSession(rotation(session, 2, proof('rot-proof-4')))));
      expect(results.filter((r) => r.rotated)).toHaveLength(1);
      expect(results.filter((r) => !r.proofReplayed)).toHaveLength(1);
      expect((await store.findSession(session.id))!.session.refresh?.generation).toBe(3);
    });

    it('rotateSession: one turn of rotations of many sessions, each with its own proof, and one proof seen before', async () => {
      const { app } = await seedApp();
      const seeded = await Promise.all(Array.from({ length: 6 }, (_, i) => seedSession(store, app.id, `turn-${i}`)));
      const proof = (key: string) => ({ dpopProof: { key, expiresAt: NOW + 600_000 } });
      expect(await store.useDpopProof({ key: 'turn-seen', expiresAt: NOW + 600_000 })).toBe(true);
      // In one turn (one batch where the store batches): five fresh proofs, one seen before, one without a proof.
      const results = await Promise.all([
        ...seeded.slice(0, 5).map(({ session }, i) => store.rotateSession(rotation(session, 1, proof(`turn-fresh-${i}`)))),
        store.rotateSession(rotation(seeded[5]!.session, 1, proof('turn-seen'))),
      ]);
      expect(results.map((r) => r.rotated)).toEqual([true, true, true, true, true, false]);
      expect(results[5]).toEqual({ rotated: false, proofReplayed: true });
      for (let i = 0; i < 5; i++) expect(await store.useDpopProof({ key: `turn-fresh-${i}`, expiresAt: NOW + 600_000 })).toBe(false);
      expect((await store.findSession(seeded[5]!.session.id))!.session.refresh?.generation).toBe(1);
    });

    it('rotateSession of a revoked session rotates nothing', async () => {
      const { app } = await seedApp();
      const { session } = await seedSession(store, app.id);
      await store.revokeSession(session.id, 'logout', NOW);
      expect(await rotate(store, session, 1)).toEqual({ rotated: false });
      expect((await store.findSession(session.id))!.session.refresh?.generation).toBe(1);
    });

    it('atomic compare-and-set: 50 concurrent rotations of one generation over two instances — exactly one rotated', async () => {
      const { app } = await seedApp();
      const stores = [store, await another()];
      await warm(stores);
      for (let round = 0; round < 5; round += 1) {
        const { session } = await seedSession(store, app.id, `racer-${round}`);
        const inputs = Array.from({ length: 50 }, (_, i) => rotation(session, 1, { next: chainRecord(2, { successorSealed: Buffer.from(`s${i}`) }) }));
        const results = await Promise.all(inputs.map((input, i) => stores[i % 2]!.rotateSession(input)));
        expect(results.filter((r) => r.rotated)).toHaveLength(1);
        const winner = inputs[results.findIndex((r) => r.rotated)]!;
        expect((await store.findSession(session.id))!.session.refresh).toEqual(winner.next);
      }
    });

    it('concurrent rotations of many sessions each stand alone: one that loses its compare-and-set loses alone, the rest rotate', async () => {
      // Both stores commit rotations arriving together in one transaction or statement (group commit);
      // every rotation must still be decided on its own, and chains must go on from the batch.
      const { app } = await seedApp();
      const seeded = await Promise.all(Array.from({ length: 20 }, (_, i) => seedSession(store, app.id, `batch-${i}`)));
      const inputs = seeded.map(({ session }) => rotation(session, 1));
      // #7 expects a generation its session is not at (a stale read): that rotation alone loses.
      inputs[7] = { ...rotation(seeded[7]!.session, 4) };
      // #8 and #9 race for one session inside the batch: exactly one of them wins.
      inputs[9] = { ...rotation(seeded[8]!.session, 1), next: chainRecord(2, { successorSealed: Buffer.from('other') }) };
      const results = await Promise.all(inputs.map((input) => store.rotateSession(input)));
      results.forEach((r, i) => { if (i !== 8 && i !== 9) expect(r.rotated, `#${i}`).toBe(i !== 7); });
      expect(results[8]!.rotated !== results[9]!.rotated).toBe(true);
      expect((await store.findSession(seeded[7]!.session.id))!.session.refresh?.generation).toBe(1);
      expect((await store.findSession(seeded[9]!.session.id))!.session.refresh?.generation).toBe(1);
      // Concurrent lookups (PostgreSQL answers a turn's lookups in one statement): each caller gets its own.
      const ids = [seeded[0]!.session.id, 'no-such-id', seeded[0]!.session.id, seeded[3]!.session.id];
      const looked = await Promise.all(ids.map((id) => store.findSession(id)));
      expect(looked.map((f) => f && [f.session.id, f.session.refresh?.generation])).toEqual([
        [seeded[0]!.session.id, 2], null, [seeded[0]!.session.id, 2], [seeded[3]!.session.id, 2],
      ]);
      for (const i of [0, 3, 19]) expect(await rotate(store, seeded[i]!.session, 2)).toEqual({ rotated: true });
    });

    it('revocation racing rotation: the outcome is always one of the two orders, never a mix', async () => {
      const { app } = await seedApp();
      const other = await another();
      await warm([store, other]);
      for (let round = 0; round < 15; round += 1) {
        const { session } = await seedSession(store, app.id, `race-${round}`);
        const [rotated, revoked] = await Promise.all([
          rotate(round % 2 ? store : other, session, 1),
          (round % 2 ? other : store).revokeSession(session.id, 'logout', NOW + 500),
        ]);
        expect(revoked).toBe(true);
        const found = (await store.findSession(session.id))!.session;
        expect(found.revokedAt).toBe(NOW + 500);
        expect(found.refresh?.generation).toBe(rotated.rotated ? 2 : 1);
        // Whatever the order, nothing rotates after the revocation committed.
        expect(await rotate(store, session, found.refresh!.generation)).toEqual({ rotated: false });
      }
    });

    it('a session occupies one row however often it rotates: 500 rotations leave the same sessions and nothing else', async () => {
      const { app } = await seedApp();
      const { session } = await seedSession(store, app.id);
      for (let g = 1; g <= 500; g += 1) expect(await rotate(store, session, g)).toEqual({ rotated: true });
      expect((await store.findSession(session.id))!.session.refresh?.generation).toBe(501);
      expect(await store.listSessions(app.id, 'alice')).toHaveLength(1);
      expect(await store.findLiveLegacyRefresh(session.id)).toBeNull();
    });

    // ── pre-upgrade refresh records ────────────────────────────────────────────────────────────────

    it('pre-upgrade records: found with their session; one upgrade rotation (of many racing) starts the chain and consumes the record', async () => {
      const legacyDb = await harness.freshDatabase();
      try {
        const app = appRecord();
        const sessions = Array.from({ length: 3 }, (_, i) => sessionRecord(app.id, `old-${i}`, { refresh: null }));
        const live = sessions.map((session) => refreshRecordOf(session, { id: `live-${session.id}` }));
        const consumed = refreshRecordOf(sessions[0]!, { id: `parent-${sessions[0]!.id}`, consumedAt: NOW + 10, successorId: live[0]!.id });
        await legacyDb.atVersion(4, [
          `INSERT INTO apps (id, name, profile, public, policy, description, created_at, updated_at)
           VALUES ('${app.id}', '${app.name}', 'native', TRUE, '${JSON.stringify(app.policy)}', '', ${NOW}, ${NOW})`,
          ...sessions.map((session) => `INSERT INTO subjects (app_id, subject, claims, status, created_at, updated_at)
           VALUES ('${app.id}', '${session.subject}', '{}', 'active', ${NOW}, ${NOW})`),
          ...sessions.map(legacySessionSql), ...live.map(legacyRefreshSql), legacyRefreshSql(consumed),
        ]);
        const a = await legacyDb.open();
        const b = await legacyDb.open();
        try {
          await a.migrate();
          await b.migrate();
          const found = await a.findLegacyRefresh(live[0]!.id);
          expect(found).toMatchObject({ record: { ...live[0], successorSealed: null }, subjectStatus: 'active', session: { id: sessions[0]!.id, refresh: null, locator: null } });
          expect((await a.findLegacyRefresh(consumed.id))?.record).toMatchObject({ consumedAt: NOW + 10, successorId: live[0]!.id });
          expect(await a.findLiveLegacyRefresh(sessions[1]!.id)).toMatchObject({ id: live[1]!.id });
          expect(await a.findLegacyRefresh('no-such-record')).toBeNull();

          const upgrades = Array.from({ length: 20 }, (_, i) => ({
            ...rotation(sessions[1]!, 0), legacyId: live[1]!.id, locator: randomBytes(7).toString('hex'), next: chainRecord(1, { successorSealed: Buffer.from(`u${i}`) }),
          }));
          const results = await Promise.all(upgrades.map((input, i) => (i % 2 ? a : b).upgradeLegacy(input)));
          expect(results.filter((r) => r.rotated)).toHaveLength(1);
          const winner = upgrades[results.findIndex((r) => r.rotated)]!;
          const after = (await a.findLegacyRefresh(live[1]!.id))!;
          expect(after.record).toMatchObject({ consumedAt: winner.now, successorId: UPGRADED });
          expect(after.session.refresh).toEqual(winner.next);
          // The session gained the winner's locator with its chain: found by it from now on.
          expect((await b.findSessionByLocator(winner.locator))?.session.id).toBe(sessions[1]!.id);
          expect(await a.findLiveLegacyRefresh(sessions[1]!.id)).toBeNull();
          // A consumed record, another session's record, a revoked session: nothing changes.
          expect(await a.upgradeLegacy({ ...rotation(sessions[0]!, 0), legacyId: consumed.id, locator: null, next: chainRecord(1) })).toEqual({ rotated: false });
          expect(await a.upgradeLegacy({ ...rotation(sessions[0]!, 0), legacyId: live[2]!.id, locator: null, next: chainRecord(1) })).toEqual({ rotated: false });
          await a.revokeSession(sessions[2]!.id, 'logout', NOW + 20);
          expect(await a.upgradeLegacy({ ...rotation(sessions[2]!, 0), legacyId: live[2]!.id, locator: null, next: chainRecord(1) })).toEqual({ rotated: false });
          expect((await a.findLegacyRefresh(live[2]!.id))?.record.consumedAt).toBeNull();
          // Then the chain goes on like any other.
          expect(await a.rotateSession(rotation(sessions[1]!, 1))).toEqual({ rotated: true });
        } finally {
          await a.close();
          await b.close();
        }
      } finally {
        await legacyDb.dispose();
      }
    });

    // ── pruning ────────────────────────────────────────────────────────────────────────────────────

    it('prune deletes what nothing can use any more and keeps the rest', async () => {
      const { app } = await seedApp();
      const retention = 7 * 24 * HOUR;
      const now = NOW + 10 * HOUR;
      const { session: live } = await seedSession(store, app.id, 'p1', { horizonAt: now + HOUR });
      // A session whose horizon is older than the retention.
      const { session: dead } = await seedSession(store, app.id, 'p2', { horizonAt: now - retention - 1 });
      // Revoked recently (kept, still listable) and revoked beyond the retention (deleted).
      const { session: recent } = await seedSession(store, app.id, 'p3', { horizonAt: now + 100 * 24 * HOUR });
      await store.revokeSession(recent.id, 'logout', now - 1000);
      const { session: ancient } = await seedSession(store, app.id, 'p4', { horizonAt: now + 100 * 24 * HOUR });
      await store.revokeSession(ancient.id, 'logout', now - retention - 1);

      expect(await store.prune(now, { revokedRetention: retention })).toEqual({ sessions: 2, refreshTokens: 0 });
      expect(await store.findSession(dead.id)).toBeNull();
      expect(await store.findSession(ancient.id)).toBeNull();
      expect(await store.findSession(recent.id)).not.toBeNull();
      expect(await store.findSession(live.id)).not.toBeNull();
      expect(await store.prune(now, { revokedRetention: retention })).toEqual({ sessions: 0, refreshTokens: 0 });

      // A live token's seal is cleared once the largest grace window and the clock-skew hour have passed
      // since it was minted, and only then: one minted ten minutes ago (past any grace window) is kept.
      const { session: sealedOld } = await seedSession(store, app.id, 'p5', { horizonAt: now + 10 * HOUR });
      const { session: sealedNew } = await seedSession(store, app.id, 'p6', { horizonAt: now + 10 * HOUR });
      const { session: sealedSkew } = await seedSession(store, app.id, 'p7', { horizonAt: now + 10 * HOUR });
      await rotate(store, sealedOld, 1, { next: chainRecord(2, { issuedAt: now - SEAL_KEPT_MS - 1, successorSealed: Buffer.from('old') }) });
      await rotate(store, sealedNew, 1, { next: chainRecord(2, { issuedAt: now - 1000, successorSealed: Buffer.from('new') }) });
      await rotate(store, sealedSkew, 1, { next: chainRecord(2, { issuedAt: now - MAX_GRACE_MS - 600_000, successorSealed: Buffer.from('skew') }) });
      await store.prune(now, { revokedRetention: retention });
      expect((await store.findSession(sealedOld.id))!.session.refresh).toMatchObject({ generation: 2, successorSealed: null });
      expect((await store.findSession(sealedNew.id))!.session.refresh?.successorSealed).toEqual(Buffer.from('new'));
      expect((await store.findSession(sealedSkew.id))!.session.refresh?.successorSealed).toEqual(Buffer.from('skew'));
    });

    // ── optional operations ────────────────────────────────────────────────────────────────────────

    it.runIf(harness.clock === true)('clockNow is the store\'s clock: the same for every instance, within a second of this host\'s (same machine)', async () => {
      const other = await another();
      const [mine, theirs] = await Promise.all([store.clockNow!(), other.clockNow!()]);
      expect(Math.abs(mine - Date.now())).toBeLessThan(1000);
      expect(Math.abs(mine - theirs)).toBeLessThan(250);
      expect(Number.isInteger(mine)).toBe(true);
    });

    it.runIf(harness.rateHits === true)('addRateHits pools counts across instances, per window, for any key', async () => {
      const other = await another();
      expect(typeof store.addRateHits).toBe('function');
      const w = 1_800_000_000_000;
      const odd = 'lf:203.0.113.1:nul\u0000and\ud800surrogate';
      const long = `lf:203.0.113.1:${'x'.repeat(5000)}`;
      const first = await store.addRateHits!({ windowStart: w, hits: [{ key: 'r:1.2.3.4', count: 3 }, { key: odd, count: 1 }, { key: long, count: 2 }] });
      expect(first).toEqual(new Map([['r:1.2.3.4', 3], [odd, 1], [long, 2]]));
      const second = await other.addRateHits!({ windowStart: w, hits: [{ key: 'r:1.2.3.4', count: 2 }, { key: 'a:5.6.7.8', count: 1 }] });
      expect(second.get('r:1.2.3.4')).toBe(5);
      expect(second.get('a:5.6.7.8')).toBe(1);
      expect(second.get(odd)).toBe(1); // another instance's key comes back too
      // Nothing to add: the totals as they stand; another window starts from zero.
      expect((await store.addRateHits!({ windowStart: w, hits: [] })).get('a:5.6.7.8')).toBe(1);
      expect(await store.addRateHits!({ windowStart: w + 60_000, hits: [] })).toEqual(new Map());
      // Concurrent pooling from both instances loses no hit.
      await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? store : other).addRateHits!({
        windowStart: w, hits: [{ key: 'b:1', count: 1 }, { key: 'a:1', count: 1 }, { key: 'c:1', count: 1 }],
      })));
      const totals = await store.addRateHits!({ windowStart: w, hits: [] });
      expect([totals.get('a:1'), totals.get('b:1'), totals.get('c:1')]).toEqual([20, 20, 20]);
      // Old windows are pruned.
      await store.prune(w + 10 * 60_000, { revokedRetention: 0 });
      expect(await store.addRateHits!({ windowStart: w, hits: [] })).toEqual(new Map());
    });

    // ── hostile input ──────────────────────────────────────────────────────────────────────────────

    it('text the database cannot store is the caller\'s error (or simply not found), never a server fault', async () => {
      const { app } = await seedApp();
      const probes: Array<() => Promise<unknown>> = [
        () => store.findSubject(app.id, 'nul\u0000byte'),
        () => store.findApp({ name: 'nul\u0000' }),
        () => store.findLegacyRefresh('id\u0000'),
        () => store.findSession('\u0000'),
        () => store.findSessionByLocator('\u0000'),
      ];
      for (const probe of probes) {
        try {
          expect(await probe()).toBeNull();
        } catch (err) {
          expect(err).toBeInstanceOf(RotorError);
          expect((err as RotorError).code).toBe('invalid_request');
        }
      }
      // Lone surrogates and NUL inside JSON claims are stored as the JSON text says.
      const session = sessionRecord(app.id, 'kim', { claims: { odd: '\ud800x\u0000y' } });
      await store.issueSession({ session, newSubjectClaims: { also: '\u0000' } });
      expect((await store.findSession(session.id))?.session.claims).toEqual({ odd: '\ud800x\u0000y' });
      expect((await store.findSubject(app.id, 'kim'))?.claims).toEqual({ also: '\u0000' });
    });
  });
}
