import { createHash } from 'node:crypto';

/**
 * Subjects are spread over this many hash slots. Each bucket's slot also holds its sessions' prune
 * index (written by the same scripts that write the sessions), so pruning reads a fixed number of
 * small sorted sets instead of scanning the keyspace.
 */
export const BUCKETS = 1024;

/** The key layout, for the store and for tests that build a database as an older Rotor left it. */
export class RedisKeys {
  constructor(readonly prefix: string) {}
  /** The directory slot: schema version, apps, app keys, signing keys. */
  get dir(): string { return `${this.prefix}:{${this.prefix}}:`; }
  get schema(): string { return `${this.dir}schema`; }
  /** One bucket's slot: its subjects, their sessions, and its prune indexes (`exp`, `seal`, `dpx`). */
  bucket(n: number): string { return `${this.prefix}:{${this.prefix}:${n}}:`; }
  /** A subject's keys: the subject, its sessions and their pre-upgrade records, all in its bucket's slot. */
  subject(appId: string, subject: string): string {
    const digest = createHash('sha256').update(appId).update('\u0000').update(subject).digest();
    return `${this.bucket(digest.readUInt16BE(0) % BUCKETS)}${digest.toString('base64url').slice(0, 22)}:`;
  }
  /** The bucket slot's base of a subject's base (or of any key in that slot). */
  bucketOf(key: string): string { return key.slice(0, key.indexOf('}') + 2); }
  /** Sessions by when prune should look at them (score: horizon, or revocation time once revoked). */
  expiries(bucketBase: string): string { return `${bucketBase}exp`; }
  /** Sessions holding a sealed successor, by when it was minted (its seal is dropped after the largest grace). */
  seals(bucketBase: string): string { return `${bucketBase}seal`; }
  /** Indexes across slots, session id, locator, pre-upgrade record id → the subject's slot. */
  sessionIndex(id: string): string { return `${this.prefix}:sid:${id}`; }
  locatorIndex(locator: string): string { return `${this.prefix}:loc:${locator}`; }
  legacyIndex(id: string): string { return `${this.prefix}:lg:${id}`; }
  /** A DPoP proof's replay-cache entry and its bucket's expiry index. */
  dpop(key: string): { key: string; index: string } {
    const digest = createHash('sha256').update(key).digest();
    const base = this.bucket(digest.readUInt16BE(0) % BUCKETS);
    return { key: `${base}dp:${digest.toString('base64url')}`, index: `${base}dpx` };
  }
  /** An app's lists across slots: its subjects (`subjects`, by name) and sessions (`sessions`, by id). */
  app(appId: string): string { return `${this.prefix}:{${this.prefix}:a:${appId}}:`; }
  get events(): string { return `${this.prefix}:{${this.prefix}:ev}:`; }
  get activity(): string { return `${this.prefix}:{${this.prefix}:act}:`; }
  get rate(): string { return `${this.prefix}:{${this.prefix}:rate}:`; }
}
