import type { SecurityEventFields, SecurityEventRecord, Store } from './store.js';
import type { Clock } from './clock.js';
import type { Millis } from './types.js';
import type { Observer, SecurityEvent } from './events.js';

/**
 * The events an operator must see: each one is recorded. The others — login_failed, which anyone can
 * cause without credentials — are bulk: recorded within a budget (below), so a flood of them can neither
 * fill the store nor bury the critical ones in the feed. The webhook makes the same split (S2-16).
 */
const CRITICAL = new Set<string>(['reuse_detected', 'session_revoked', 'key_rotated', 'key_revoked', 'subject_disabled', 'subject_deleted']);

/** Bulk events per process: a burst of this many, then one a second; those over it are counted into the next recorded one. */
const BULK_BURST = 30;
const BULK_PER_SECOND = 1;

/**
 * SPEC §4.3 `GET /admin/events`: the security events every instance records in the store, so any
 * instance (and every CLI command) adds to one feed and any instance answers it. Kept for
 * ROTOR_REVOKED_RETENTION (`Rotor.prune`).
 *
 * Recording never delays or fails what caused the event: the write is started at once (with SQLite it
 * is done before `event()` returns) and a failed write is dropped — the log line, the metric and the
 * webhook still carry the event. Fields are what the domain gives observers: ids, reasons, counts.
 */
export class SecurityEventLog {
  private tokens = BULK_BURST;
  private refilledAt: number;
  /** Bulk events not recorded since the last one that was, by event name. */
  private readonly suppressed = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Writes that failed (store unavailable): the event stays in logs, metrics and the webhook only. */
  lost = 0;

  constructor(private readonly store: Store, private readonly clock: Clock) {
    this.refilledAt = clock.now();
  }

  /** The observer the domain reports to: everything goes to `inner` (logs, metrics, webhook) and is recorded here. */
  observing(inner: Observer): Observer {
    return {
      refresh: (outcome, reason, appId) => inner.refresh(outcome, reason, appId),
      event: (event, fields) => {
        // One time for the record and the webhook, by this Rotor's clock (the host's may be off: store_clock.ts).
        const at = this.clock.now();
        inner.event(event, fields, at);
        this.record(event, fields, at);
      },
    };
  }

  record(event: SecurityEvent | string, fields: SecurityEventFields, now: Millis = this.clock.now()): void {
    const stored: SecurityEventFields = { ...fields };
    if (!CRITICAL.has(event)) {
      if (!this.takeBulkToken(now)) {
        this.suppressed.set(event, (this.suppressed.get(event) ?? 0) + 1);
        return;
      }
      const skipped = this.suppressed.get(event);
      if (skipped) {
        stored.suppressedBefore = skipped;
        this.suppressed.delete(event);
      }
    }
    const appId = typeof stored.appId === 'string' ? stored.appId : null;
    delete stored.appId;
    const write = (async () => {
      try {
        await this.store.appendEvent({ at: now, event, appId, fields: stored });
      } catch {
        this.lost += 1;
      }
    })();
    this.inFlight.add(write);
    void write.finally(() => this.inFlight.delete(write));
  }

  /** Settles once every write started so far has finished (a CLI command waits for it before closing the store). */
  async flushed(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  list(query: { afterId: number | null; sinceAt: number | null; limit: number }): Promise<SecurityEventRecord[]> {
    return this.store.listEvents(query);
  }

  private takeBulkToken(now: number): boolean {
    const elapsed = Math.max(0, now - this.refilledAt) / 1000;
    if (elapsed > 0) {
      this.tokens = Math.min(BULK_BURST, this.tokens + elapsed * BULK_PER_SECOND);
      this.refilledAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
