import { newAppKey, parseAppKey, constantTimeEqual } from '../crypto/secrets.js';
import type { Store } from './store.js';
import type { Clock } from './clock.js';
import { invalidRequest, RotorError } from './errors.js';
import type { Observer } from './events.js';
import { knownFields, TIMESTAMPS_KEPT, type FieldRules } from './fields.js';
import { isUlid, isValidAppName, newId } from './ids.js';
import type { Keyring } from './keyring.js';
import type { Profile } from './policy.js';
import type { Profiles } from './profiles.js';
import type { App, SigningKeyRecord } from './types.js';

const APP_CACHE_MS = 1000;

/**
 * Access tokens that name no session (JWTPlus, FIB: their chain id locates it) find it through their
 * pair's refresh record (docs/dialects.md). Without refresh tokens, or with access tokens outliving the
 * record (pruned at its expiry), every such access token would read as revoked: refused as configuration.
 */
function assertSessionTraceable(profiles: Profiles, profile: Profile, policy: App['policy']): void {
  if (profiles.formatFor(profile).chainId?.locatesSession !== true) return;
  if (policy.refreshTtl === null) throw invalidRequest(`a ${profile} app needs refresh tokens: policy.refreshTtl cannot be off`);
  if (policy.accessTtl > policy.refreshTtl) {
    throw invalidRequest(`policy.accessTtl must not exceed policy.refreshTtl in a ${profile} app (its access tokens find their session through the refresh record)`);
  }
}

/**
 * DPoP binds native apps only (a dialect's token layout has no room for `cnf`): no dialect app can
 * require it, nor demand server nonces, which only a proof could carry back.
 */
function assertDpopFits(profiles: Profiles, profile: Profile, policy: App['policy']): void {
  if (profiles.formatFor(profile).bindsAccessTokens === true) return;
  if (policy.dpop === 'required') {
    throw invalidRequest(`${profile} apps cannot require DPoP: their dialect endpoints carry no proof (policy.dpop off or allowed)`);
  }
  if (policy.dpopNonce) {
    throw invalidRequest(`${profile} apps cannot demand DPoP nonces: their dialect endpoints carry no proof (policy.dpopNonce false)`);
  }
}

/** SPEC §1: a dialect without client authentication cannot hold a confidential app's tokens. */
function assertCanBeConfidential(profiles: Profiles, profile: Profile, isPublic: boolean): void {
  if (!isPublic && profiles.isKeyless(profile)) {
    throw invalidRequest(`${profile} apps cannot be confidential: their renewal call carries no client authentication (leave public on)`);
  }
}

export interface CreateAppInput {
  name: unknown;
  profile?: unknown;
  public?: unknown;
  policy?: unknown;
  description?: unknown;
}


/** What `create` takes; what an app has that only Rotor sets. */
const CREATE_FIELDS: FieldRules = {
  known: ['name', 'profile', 'public', 'policy', 'description'],
  fixed: {
    id: "cannot be set: Rotor chooses an app's id",
    appKey: 'cannot be set: Rotor generates the app key and shows it once',
    ...TIMESTAMPS_KEPT,
  },
};

/** What `update` takes (docs/api.md, PATCH); the rest of an app never changes once created. */
const UPDATE_FIELDS: FieldRules = {
  known: ['name', 'public', 'policy', 'description'],
  fixed: {
    id: 'cannot be changed: an app keeps its id',
    // SPEC §1: the profile fixes the shape of the app's tokens, which its clients and peers rely on.
    profile: "cannot be changed: it fixes the shape of the app's tokens (create another app)",
    ...TIMESTAMPS_KEPT,
  },
};

/** Apps (tenants), their app keys and their signing keys. */
export class Apps {
  private readonly cache = new Map<string, { at: number; app: App | null }>();

  constructor(
    private readonly store: Store,
    private readonly keyring: Keyring,
    private readonly clock: Clock,
    private readonly observer: Observer,
    /** Every profile the domain serves (native and the injected dialects): defaults and policy fields. */
    private readonly profiles: Profiles,
  ) {}

  /** `fields` is a `CreateAppInput`, checked here: the admin API hands over its body as it came. */
  async create(fields: unknown): Promise<{ app: App; appKey: string; appKeyId: string }> {
    const input: Partial<CreateAppInput> = knownFields('an app', fields, CREATE_FIELDS);
    const name = input.name;
    if (typeof name !== 'string' || !isValidAppName(name)) {
      throw invalidRequest('name must match [a-z0-9][a-z0-9_-]{0,62} and must not be a ULID');
    }
    const profile = this.profiles.parse(input.profile === undefined ? 'native' : input.profile);
    if (input.public !== undefined && typeof input.public !== 'boolean') throw invalidRequest('public must be true or false');
    const isPublic = input.public ?? this.profiles.publicByDefault(profile);
    assertCanBeConfidential(this.profiles, profile, isPublic);
    const description = input.description === undefined ? '' : input.description;
    if (typeof description !== 'string' || description.length > 1024) throw invalidRequest('description must be a string of at most 1024 characters');
    const policy = this.profiles.applyPatch(this.profiles.defaults(profile), input.policy);
    assertSessionTraceable(this.profiles, profile, policy);
    assertDpopFits(this.profiles, profile, policy);
    const now = this.clock.now();
    const app: App = { id: newId(), name, profile, public: isPublic, policy, description, createdAt: now, updatedAt: now };
    const keyId = newId();
    const { appKey, secretHash } = newAppKey(keyId);
    const signingKey = this.keyring.newKeyRecord(app.id, policy.alg);
    const { created } = await this.store.createApp({
      app, appKey: { id: keyId, appId: app.id, secretHash, createdAt: now, revokedAt: null }, signingKey,
    });
    if (!created) throw new RotorError('conflict', `an app named "${name}" already exists`);
    return { app, appKey, appKeyId: keyId };
  }

  /** Finds an app by ULID or by name; `app_not_found` otherwise. */
  async get(ref: unknown): Promise<App> {
    const app = typeof ref === 'string' && ref.length > 0 && ref.length <= 64 ? await this.lookup(ref) : null;
    if (!app) throw new RotorError('app_not_found', 'no app has that id or name');
    return app;
  }

  /** The canonical id of the app a reference names (its name, its id in any letter case), or null. */
  async idOf(ref: unknown): Promise<string | null> {
    try {
      return (await this.get(ref)).id;
    } catch (err) {
      if (err instanceof RotorError && err.code === 'app_not_found') return null;
      throw err;
    }
  }

  /** A reference that is neither a ULID nor a possible name (NUL, spaces, upper case…) names no app: no store read. */
  private async lookup(ref: string): Promise<App | null> {
    if (isUlid(ref)) return this.byId(ref.toUpperCase());
    return isValidAppName(ref) ? this.completed(await this.store.findApp({ name: ref })) : null;
  }

  /** By id, cached for a second: the refresh path asks for its app on every call. */
  async byId(id: string): Promise<App | null> {
    const now = this.clock.now();
    const hit = this.cache.get(id);
    if (hit && now - hit.at < APP_CACHE_MS && now >= hit.at) return hit.app;
    const app = this.completed(await this.store.findApp({ id }));
    this.cache.set(id, { at: now, app });
    if (this.cache.size > 10_000) this.cache.clear();
    return app;
  }

  async list(): Promise<App[]> {
    return (await this.store.listApps()).map((app) => this.completed(app)!);
  }

  /**
   * An app as stored, with the policy fields a later release (or a newly listed dialect) added filled in
   * with its profile's defaults: the store gives back what was written; the domain knows the dialects.
   */
  private completed(app: App | null): App | null {
    return app && { ...app, policy: this.profiles.complete(app.profile, app.policy) };
  }

  /**
   * Applies the patch to the app as stored now and writes it with a compare-and-set on `updated_at`
   * (S2-12): when another update committed since the read, the patch is applied again to the newer row
   * and validated again (the policy's fields constrain each other), a few times, then `conflict`. So
   * two concurrent updates of different fields both survive, and no combination the validation
   * refuses can come out of two updates that were each valid alone. `fields` is an `AppPatch`, checked here.
   */
  async update(ref: unknown, fields: unknown): Promise<App> {
    const patch: AppPatch = knownFields("an app's update", fields, UPDATE_FIELDS);
    const { id } = await this.get(ref);
    for (let attempt = 1; ; attempt += 1) {
      // Read from the store, not the cache: the compare-and-set needs the row as it is.
      const app = this.completed(await this.store.findApp({ id }));
      if (!app) throw new RotorError('app_not_found', 'no app has that id or name');
      const next = this.patched(app, patch);
      const result = await this.store.updateApp(next, app.updatedAt);
      if (result.updated) {
        this.cache.delete(id);
        // A new algorithm takes effect through a key rotation, so old tokens keep verifying.
        if (next.policy.alg !== app.policy.alg) await this.rotateKey(next);
        return next;
      }
      if (result.reason === 'name_taken') throw new RotorError('conflict', `an app named "${next.name}" already exists`);
      if (attempt >= UPDATE_ATTEMPTS) throw new RotorError('conflict', 'the app kept changing under concurrent updates; retry');
    }
  }

  async delete(ref: unknown): Promise<void> {
    const app = await this.get(ref);
    await this.store.deleteApp(app.id);
    this.cache.delete(app.id);
    this.keyring.invalidate(app.id);
  }

  // ── app keys ───────────────────────────────────────────────────────────────────────────────────

  async createAppKey(ref: unknown): Promise<{ id: string; appKey: string }> {
    const app = await this.get(ref);
    const id = newId();
    const { appKey, secretHash } = newAppKey(id);
    await this.store.createAppKey({ id, appId: app.id, secretHash, createdAt: this.clock.now(), revokedAt: null });
    return { id, appKey };
  }

  async revokeAppKey(ref: unknown, keyId: unknown): Promise<void> {
    const app = await this.get(ref);
    if (typeof keyId !== 'string' || !(await this.store.revokeAppKey(app.id, keyId, this.clock.now()))) {
      throw new RotorError('not_found', 'no live app key has that id');
    }
  }

  /**
   * The app an app key belongs to, when it is live (and, with `app`, belongs to that app).
   * The secret is compared by hash in constant time; any failure is the same `invalid_app_key`.
   */
  async authenticate(appKey: unknown, app?: App): Promise<App> {
    const parsed = typeof appKey === 'string' ? parseAppKey(appKey) : null;
    const record = parsed ? await this.store.findAppKey(parsed.id) : null;
    const ok = record !== null && parsed !== null && record.revokedAt === null && constantTimeEqual(record.secretHash, parsed.secretHash);
    if (!ok || (app && record.appId !== app.id)) throw new RotorError('invalid_app_key', 'the app key is missing, wrong or revoked');
    const owner = app ?? (await this.byId(record.appId));
    if (!owner) throw new RotorError('invalid_app_key', 'the app key is missing, wrong or revoked');
    return owner;
  }

  // ── signing keys ───────────────────────────────────────────────────────────────────────────────

  async listKeys(ref: unknown): Promise<SigningKeyRecord[]> {
    const app = await this.get(ref);
    return this.store.listSigningKeys(app.id);
  }

  async rotateKey(appOrRef: App | unknown): Promise<SigningKeyRecord> {
    const app = isApp(appOrRef) ? appOrRef : await this.get(appOrRef);
    const active = (await this.store.listSigningKeys(app.id)).find((k) => k.state === 'active');
    await this.keyring.rotate(app, active?.kid ?? null);
    const now = (await this.store.listSigningKeys(app.id)).find((k) => k.state === 'active');
    if (!now) throw new RotorError('store_unavailable', 'the rotation could not be read back');
    this.observer.event('key_rotated', { appId: app.id, kid: now.kid, previousKid: active?.kid ?? null });
    return now;
  }

  async revokeKey(ref: unknown, kid: unknown): Promise<void> {
    const app = await this.get(ref);
    if (typeof kid !== 'string' || !(await this.keyring.revoke(app.id, kid))) {
      throw new RotorError('not_found', 'no unrevoked signing key of this app has that kid');
    }
    this.observer.event('key_revoked', { appId: app.id, kid });
  }

  /**
   * The next version of `app`: validated against it, `updatedAt` strictly after the one read (so the
   * column stays a version even within one millisecond, or with a clock that stepped back).
   */
  private patched(app: App, patch: AppPatch): App {
    const next: App = { ...app, updatedAt: Math.max(this.clock.now(), app.updatedAt + 1) };
    if (patch.name !== undefined) {
      if (typeof patch.name !== 'string' || !isValidAppName(patch.name)) throw invalidRequest('name must match [a-z0-9][a-z0-9_-]{0,62} and must not be a ULID');
      next.name = patch.name;
    }
    if (patch.public !== undefined) {
      if (typeof patch.public !== 'boolean') throw invalidRequest('public must be true or false');
      // SPEC §1 (and migration 3, which made the existing ones public): not by an update either.
      assertCanBeConfidential(this.profiles, app.profile, patch.public);
      next.public = patch.public;
    }
    if (patch.description !== undefined) {
      if (typeof patch.description !== 'string' || patch.description.length > 1024) throw invalidRequest('description must be a string of at most 1024 characters');
      next.description = patch.description;
    }
    next.policy = this.profiles.applyPatch(app.policy, patch.policy);
    if (patch.policy !== undefined) {
      assertSessionTraceable(this.profiles, app.profile, next.policy);
      assertDpopFits(this.profiles, app.profile, next.policy);
    }
    return next;
  }
}

function isApp(value: unknown): value is App {
  return typeof value === 'object' && value !== null && 'policy' in value && 'profile' in value;
}

type AppPatch = { name?: unknown; public?: unknown; policy?: unknown; description?: unknown };

/** Compare-and-set attempts of one update before it answers `conflict`. */
const UPDATE_ATTEMPTS = 8;
