import { RotorError } from './errors.js';
import { ALGORITHMS } from './policy.js';
import type { Profiles } from './profiles.js';
import type { Clock } from './clock.js';
import type { App, SigningKeyRecord } from './types.js';
import type { Store } from './store.js';
import type { MasterKey } from '../crypto/master_key.js';
import { generateKeyMaterial, SigningKey } from '../crypto/signing_key.js';
import { newId } from './ids.js';

/**
 * An app's key records as of one value of its signing-key version, a counter the store bumps in the
 * same write as every key change (creation, rotation, revocation) and returns with the hot queries.
 */
interface AppKeys {
  version: number;
  records: SigningKeyRecord[];
}

/** Which view of an app's keys a caller needs: as of a version it read, the store's now, or the cached one. */
export type KeysAt = number | 'now' | 'cached';

/**
 * Signing keys per app: creation, rotation (manual and by period), revocation, and a cache of imported
 * KeyObjects so the hot path neither decrypts nor parses key material. The cache is keyed by the
 * app's signing-key version, not by time (S2-13): a rotation or revocation made by any instance or CLI
 * command is seen by the next request that reads the version, which the refresh and verification
 * paths do in the query they make anyway. No instance signs with a rotated-out key or accepts a
 * revoked one once the command has returned.
 */
export class Keyring {
  private readonly byApp = new Map<string, AppKeys>();
  private readonly imported = new Map<string, SigningKey>();
  /** One key generation per app at a time: concurrent requests wait for it instead of each generating one. */
  private readonly generating = new Map<string, Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly masterKey: MasterKey,
    private readonly clock: Clock,
    /** How long each profile's tokens can live (a retiring key stays published that long). */
    private readonly profiles: Pick<Profiles, 'longestTokenLifetime'>,
  ) {}

  /** A new sealed key record; it becomes usable only once a store operation persists it. */
  newKeyRecord(appId: string, alg: App['policy']['alg']): SigningKeyRecord {
    const kid = newId();
    const material = generateKeyMaterial(alg, kid);
    return {
      kid, appId, alg, state: 'active', publicJwk: material.publicJwk,
      privateSealed: this.masterKey.seal('signing-key', material.secret, kid),
      createdAt: this.clock.now(), retiredAt: null, publishUntil: null, revokedAt: null,
    };
  }

  invalidate(appId: string): void {
    this.byApp.delete(appId);
  }

  private async records(appId: string, at: KeysAt): Promise<SigningKeyRecord[]> {
    const cached = this.byApp.get(appId);
    if (cached && at === 'cached') return cached.records;
    // The version is read before the records: records newer than their version only cause a reload.
    const version = typeof at === 'number' ? at : await this.store.signingKeysVersion(appId);
    if (cached && cached.version === version) return cached.records;
    const records = await this.store.listSigningKeys(appId);
    this.byApp.set(appId, { version, records });
    return records;
  }

  private use(record: SigningKeyRecord): SigningKey {
    let key = this.imported.get(record.kid);
    if (!key) {
      key = new SigningKey(record.kid, record.alg, this.masterKey.open('signing-key', record.privateSealed, record.kid));
      this.imported.set(record.kid, key);
    }
    return key;
  }

  /**
   * The key that signs new tokens now (as of `at`: the version the caller's query returned, else the
   * store's now), rotating first when the policy's period has passed.
   */
  async activeKey(app: App, at: number | 'now' = 'now'): Promise<SigningKey> {
    let active = (await this.records(app.id, at)).find((k) => k.state === 'active');
    const period = app.policy.keyRotationPeriod;
    const stale = active && period !== null && this.clock.now() - active.createdAt >= period * 1000;
    if (!active || stale || active.alg !== app.policy.alg) {
      await this.rotateOnce(app, active?.kid ?? null);
      active = (await this.records(app.id, 'now')).find((k) => k.state === 'active');
    }
    if (!active) throw new RotorError('store_unavailable', 'no active signing key could be loaded');
    return this.use(active);
  }

  /**
   * A key that may still verify tokens of this app: active, or retiring and still published.
   * Lookup is scoped to the app, so a kid of another tenant is simply unknown here.
   */
  async verificationKey(appId: string, kid: string, at: KeysAt = 'now'): Promise<SigningKey | null> {
    let record = (await this.records(appId, at)).find((k) => k.kid === kid);
    // A kid the cached view does not know may be newer than it (a rotation elsewhere): ask the store.
    if (!record && at === 'cached') record = (await this.records(appId, 'now')).find((k) => k.kid === kid);
    if (!record || !isUsableForVerification(record, this.clock.now())) return null;
    return this.use(record);
  }

  /**
   * A key of this app that was revoked, among the keys as last read (no store read): to tell a genuine
   * token of a dead key (`revoked`) from a forgery, never to accept one.
   */
  revokedKeyAsRead(appId: string, kid: string): SigningKey | null {
    const record = this.byApp.get(appId)?.records.find((k) => k.kid === kid);
    return record?.state === 'revoked' ? this.use(record) : null;
  }

  /**
   * Whether `kid` may still verify as of `version` (read with the caller's hot query): what a signature
   * checked against the cached keys must pass before its token is accepted.
   */
  async stillVerifies(appId: string, kid: string, version: number): Promise<boolean> {
    return (await this.verificationKey(appId, kid, version)) !== null;
  }

  private rotateOnce(app: App, expectActiveKid: string | null): Promise<void> {
    let running = this.generating.get(app.id);
    if (!running) {
      running = this.rotate(app, expectActiveKid).finally(() => this.generating.delete(app.id));
      this.generating.set(app.id, running);
    }
    return running;
  }

  /** Retires the active key (if still `expectActiveKid`) in favour of a new one; a lost race is fine. */
  async rotate(app: App, expectActiveKid: string | null): Promise<void> {
    const now = this.clock.now();
    const next = this.newKeyRecord(app.id, app.policy.alg);
    const publishUntil = now + (this.profiles.longestTokenLifetime(app.profile, app.policy) + 60) * 1000;
    await this.store.rotateSigningKey({ appId: app.id, expectActiveKid, next, now, publishUntil });
    this.invalidate(app.id);
  }

  async revoke(appId: string, kid: string): Promise<boolean> {
    const revoked = await this.store.revokeSigningKey(appId, kid, this.clock.now());
    this.imported.delete(kid);
    this.invalidate(appId);
    return revoked;
  }

  /**
   * Opens every published key once (F-13, J-29): refuses a start with a wrong master key, an HMAC secret
   * under 32 bytes, an RSA key under 2048 bits or an unknown algorithm, instead of failing per request.
   */
  async checkPublishedKeys(): Promise<number> {
    const records = await this.store.listPublishedSigningKeys(this.clock.now());
    for (const record of records) {
      if (!(ALGORITHMS as readonly string[]).includes(record.alg)) throw new Error(`signing key ${record.kid} has the unknown algorithm ${String(record.alg).slice(0, 20)}`);
      let secret: Buffer;
      try {
        secret = this.masterKey.open('signing-key', record.privateSealed, record.kid);
      } catch {
        throw new Error(`the master key does not decrypt signing key ${record.kid}: is ROTOR_MASTER_KEY (or data/master.key) the one this database was created with?`);
      }
      this.imported.set(record.kid, new SigningKey(record.kid, record.alg, secret));
    }
    return records.length;
  }
}

export function isUsableForVerification(record: SigningKeyRecord, now: number): boolean {
  if (record.state === 'active') return true;
  return record.state === 'retiring' && record.publishUntil !== null && now < record.publishUntil;
}
