import type { Clock } from '../domain/clock.js';
import type { Millis } from '../domain/types.js';

/** How often the offset to the store's clock is measured again. */
const SYNC_EVERY_MS = 60_000;
/** A measurement whose round trip took longer says little about the offset: it is not used. */
const MAX_ROUND_TRIP_MS = 500;
/** Changes smaller than this are noise (half a round trip): time does not jitter back and forth. */
const MIN_CHANGE_MS = 25;

/**
 * The host's clock corrected to the store's (SECURITY-CASES F-11): instances on one PostgreSQL database or
 * one Redis Cluster judge grace windows, expiries and replays against each other's timestamps, so one
 * whose clock ran ahead took a tab's grace retry for reuse. Keeping time by the store gives them all
 * one clock, to within half a round trip. The offset is measured at start and every minute; while the
 * store cannot be read, the last one holds.
 */
export class StoreClock implements Clock {
  private offset = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly base: Clock, private readonly storeNow: () => Promise<Millis>) {}

  now(): number {
    return this.base.now() + this.offset;
  }

  /** This host's clock minus the store's, as last measured (positive: this host runs ahead). */
  get skew(): number {
    return -this.offset;
  }

  /** Measures the offset once; false when the store could not be read quickly enough. */
  async sync(): Promise<boolean> {
    const sent = this.base.now();
    let theirs: Millis;
    try {
      theirs = await this.storeNow();
    } catch {
      return false;
    }
    const received = this.base.now();
    if (!Number.isFinite(theirs) || received - sent > MAX_ROUND_TRIP_MS) return false;
    const offset = Math.round(theirs - (sent + received) / 2);
    if (Math.abs(offset - this.offset) >= MIN_CHANGE_MS) this.offset = offset;
    return true;
  }

  /** Measures again every minute until `stop`; the timer never keeps the process alive. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sync(), SYNC_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
