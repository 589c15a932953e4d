/**
 * The lock that serialises refreshes across the tabs and workers of an origin: a Web Lock named after
 * `storageKey` whose holder beats every second (a silent one is presumed frozen and the lock is stolen
 * from it); without Web Locks, a lease kept in the shared storage; without shared storage, a queue
 * inside this context alone.
 */
import type { StorageLike } from './types.js';
import { type Message, sleep } from './state.js';

/** Given to the holder's work: `lost` turns true when another context took the lock from it. */
export interface Hold { lost: boolean }
interface Lease { owner: string; until: number }

const HEARTBEAT_MS = 1000;
/** Lease lock: how long a writer waits before believing its lease won. */
const LEASE_SETTLE_MS = 120;
const LEASE_POLL_MS = 100;

export interface CrossTabLockOptions {
  /** The lock's name (`storageKey`); the lease and the beat are kept under `<name>:lock` and `<name>:beat`. */
  name: string;
  storage: StorageLike;
  /** Whether other contexts read the same storage. */
  shared: boolean;
  lockTimeoutMs: number;
  /** This context's id, the owner of its leases. */
  id: string;
  channel: BroadcastChannel | null;
  locks: LockManager | null;
}

export class CrossTabLock {
  readonly leaseKey: string;
  readonly beatKey: string;
  /** When the holder was last heard of (its beat, or anything else on the channel or in storage). */
  lastBeat = 0;
  private readonly key: string;
  private readonly storage: StorageLike;
  private readonly shared: boolean;
  private readonly lockTimeoutMs: number;
  private readonly id: string;
  private readonly channel: BroadcastChannel | null;
  private readonly locks: LockManager | null;
  private localQueue: Promise<unknown> = Promise.resolve();

  constructor(options: CrossTabLockOptions) {
    this.key = options.name;
    this.leaseKey = `${options.name}:lock`;
    this.beatKey = `${options.name}:beat`;
    this.storage = options.storage;
    this.shared = options.shared;
    this.lockTimeoutMs = options.lockTimeoutMs;
    this.id = options.id;
    this.channel = options.channel;
    this.locks = options.locks;
  }

  withLock<T>(fn: (hold: Hold) => Promise<T>): Promise<T> {
    if (this.locks) return this.withWebLock(this.locks, fn);
    // Inside this context, one holder at a time; across contexts, a lease in the shared storage.
    const run = this.localQueue.then(() => (this.shared ? this.withLease(fn) : this.holding(fn, null)));
    this.localQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * A Web Lock. Waiters watch the holder's heartbeat: one silent for `lockTimeoutMs` (plus a random
   * part, so that waiters do not all steal at once) is frozen, and the lock is stolen from it. A holder
   * whose lock was stolen still finishes its own work, and only writes if nobody moved the session on.
   */
  private async withWebLock<T>(locks: LockManager, fn: (hold: Hold) => Promise<T>): Promise<T> {
    const start = Date.now();
    const patience = this.lockTimeoutMs + Math.random() * 1000;
    const controller = new AbortController();
    let silent = false;
    const watch = setInterval(() => {
      if (!this.channel && this.shared) void this.readBeat();
      if (Date.now() - Math.max(start, this.lastBeat) > patience) {
        silent = true;
        controller.abort();
      }
    }, 200);
    let task: Promise<T> | null = null;
    const hold: Hold = { lost: false };
    const granted = () => {
      clearInterval(watch);
      return (task = this.holding(fn, hold));
    };
    try {
      return await locks.request(this.key, { signal: controller.signal }, granted);
    } catch (err) {
      if (task) {
        hold.lost = true;
        return await task;
      }
      if (!silent) throw err;
      try {
        return await locks.request(this.key, { steal: true }, granted);
      } catch (stolen) {
        if (task) {
          hold.lost = true;
          return await task;
        }
        throw stolen;
      }
    } finally {
      clearInterval(watch);
    }
  }

  /** Fallback without Web Locks: a lease `{owner, until}` in the shared storage, renewed by the heartbeat. */
  private async withLease<T>(fn: (hold: Hold) => Promise<T>): Promise<T> {
    await sleep(Math.random() * 40);
    for (;;) {
      const lease = await this.readLease();
      if (!lease || lease.until < Date.now() || lease.owner === this.id) {
        await this.storage.setItem(this.leaseKey, JSON.stringify({ owner: this.id, until: Date.now() + this.lockTimeoutMs } satisfies Lease));
        await sleep(LEASE_SETTLE_MS);
        if ((await this.readLease())?.owner === this.id) {
          const hold: Hold = { lost: false };
          try {
            return await this.holding(fn, hold, true);
          } finally {
            if ((await this.readLease())?.owner === this.id) await this.storage.removeItem(this.leaseKey);
          }
        }
      }
      await sleep(LEASE_POLL_MS + Math.random() * 50);
    }
  }

  /** Runs the holder's work while beating: on the channel, and (lease mode) by renewing the lease. */
  private async holding<T>(fn: (hold: Hold) => Promise<T>, hold: Hold | null, lease = false): Promise<T> {
    const own = hold ?? { lost: false };
    const beat = async () => {
      if (this.channel) this.channel.postMessage({ type: 'beat' } satisfies Message);
      else if (this.shared && !lease) await this.storage.setItem(this.beatKey, String(Date.now()));
      if (lease) {
        if ((await this.readLease())?.owner !== this.id) own.lost = true;
        else await this.storage.setItem(this.leaseKey, JSON.stringify({ owner: this.id, until: Date.now() + this.lockTimeoutMs } satisfies Lease));
      }
    };
    void beat();
    const timer = setInterval(() => void beat().catch(() => undefined), HEARTBEAT_MS);
    try {
      return await fn(own);
    } finally {
      clearInterval(timer);
    }
  }

  private async readLease(): Promise<Lease | null> {
    try {
      const lease = JSON.parse((await this.storage.getItem(this.leaseKey)) ?? 'null') as Lease | null;
      return lease && typeof lease.owner === 'string' && typeof lease.until === 'number' ? lease : null;
    } catch {
      return null;
    }
  }

  /** Without a channel, a Web Lock holder beats in the shared storage. */
  private async readBeat(): Promise<void> {
    const at = Number(await this.storage.getItem(this.beatKey));
    if (Number.isFinite(at) && at > this.lastBeat) this.lastBeat = at;
  }
}
