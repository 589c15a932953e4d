import type { Clock } from '../domain/clock.js';
import type { Millis } from '../domain/types.js';

/** How often the offset to the store's clock is measured again; at start, until a first success. */
const SYNC_EVERY_MS = 60_000;
const RETRY_UNSYNCED_MS = 5_000;
/** A sample's error is half its round trip: one slower than this says too little to be used. */
const MAX_ROUND_TRIP_MS = 2_000;
/** Changes smaller than this are noise: time does not jitter back and forth. */
const MIN_CHANGE_MS = 25;
/**
 * An offset beyond this is taken for a broken clock, the store's or this host's, and not applied: one
 * wrong database clock would otherwise shift every instance's tokens and prune at once.
 */
export const MAX_OFFSET_MS = 5 * 60_000;

export type SyncResult =
  | { ok: true; offset: number; changedBy: number }
  | { ok: false; reason: 'unreadable' | 'slow' | 'implausible'; offset?: number };

/**
 * The host's clock corrected to the store's (SECURITY-CASES F-11): instances on one PostgreSQL database or
 * one Redis Cluster judge grace windows, expiries and replays against each other's timestamps, so one
 * whose clock ran ahead took a tab's grace retry for reuse. Keeping time by the store gives them all one
 * clock, to within half a round trip. Each measurement takes two samples (the first may open a
 * connection) and keeps the quicker; while the store cannot be read, the last offset holds.
 */
export class StoreClock implements Clock {
  private offset = 0;
  private synced = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly base: Clock, private readonly storeNow: () => Promise<Millis>) {}

  now(): number {
    return this.base.now() + this.offset;
  }

  /** This host's clock minus the store's, as last applied (positive: this host runs ahead). */
  get skew(): number {
    return -this.offset;
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /** Measures the offset once and applies it when it is sound. */
  async sync(): Promise<SyncResult> {
    const samples: { offset: number; roundTrip: number }[] = [];
    for (let i = 0; i < 2; i += 1) {
      const sent = this.base.now();
      let theirs: Millis;
      try {
        theirs = await this.storeNow();
      } catch {
        continue;
      }
      const received = this.base.now();
      if (Number.isFinite(theirs)) samples.push({ offset: Math.round(theirs - (sent + received) / 2), roundTrip: received - sent });
    }
    if (samples.length === 0) return { ok: false, reason: 'unreadable' };
    const best = samples.reduce((a, b) => (b.roundTrip < a.roundTrip ? b : a));
    if (best.roundTrip > MAX_ROUND_TRIP_MS) return { ok: false, reason: 'slow' };
    if (Math.abs(best.offset) > MAX_OFFSET_MS) return { ok: false, reason: 'implausible', offset: best.offset };
    const changedBy = best.offset - this.offset;
    if (!this.synced || Math.abs(changedBy) >= MIN_CHANGE_MS) this.offset = best.offset;
    this.synced = true;
    return { ok: true, offset: this.offset, changedBy };
  }

  /** Measures again every minute (every 5 s until a first success) until `stop`; never keeps the process alive. */
  start(onResult: (result: SyncResult) => void = () => {}): void {
    if (this.timer) return;
    const next = () => {
      this.timer = setTimeout(async () => {
        onResult(await this.sync());
        if (this.timer) next();
      }, this.synced ? SYNC_EVERY_MS : RETRY_UNSYNCED_MS);
      this.timer.unref();
    };
    next();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
