import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { newId } from '../domain/ids.js';

export interface WebhookOptions {
  url: string;
  /** Signs each body: `X-Rotor-Signature: sha256=<hex HMAC of the body>`. */
  secret: string | null;
  /** Attempts per event (first try included). */
  attempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
  /** Critical events beyond this many waiting are dropped (and logged), so a dead receiver cannot grow memory. */
  maxQueue?: number;
  /** The same cap for bulk events (login_failed, unknown names); smaller, since they are cheap for anyone to cause. */
  maxBulkQueue?: number;
}

type Event = Record<string, unknown>;
type Priority = 'critical' | 'bulk';

/**
 * The events an operator must see. Everything else — login_failed, which anyone can cause without
 * credentials, and any name not listed — is bulk, so a flood of it can never crowd these out (S2-16).
 */
const CRITICAL = new Set(['reuse_detected', 'session_revoked', 'key_revoked', 'key_rotated', 'subject_disabled', 'subject_deleted']);

/** One bounded FIFO per priority, with its own worker, so the classes never share space or a place in line. */
interface Lane {
  readonly priority: Priority;
  readonly cap: number;
  readonly queue: Event[];
  running: boolean;
  /** Drops since the lane last emptied, by event name only (never a payload field), for one summary log line. */
  readonly dropped: Map<string, number>;
}

/**
 * Delivers security events to an HTTP endpoint, one JSON POST each, retried with exponential backoff.
 * Delivery is asynchronous and never delays or fails the request that caused the event.
 *
 * Critical events have their own queue and worker, and the bulk worker waits before each attempt while
 * any critical event is waiting or in flight: critical events go first, and a bulk event stuck in retries
 * to a slow receiver never holds one up. A full bulk queue drops the arriving bulk event; a critical event is
 * dropped only when the critical queue itself is full. Bulk events are not sampled or coalesced: the
 * `rotor_events_total` metric already counts every login_failed, and drops are summarised in the log.
 */
export class WebhookSink {
  private readonly critical: Lane;
  private readonly bulk: Lane;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly timeoutMs: number;
  /** Wakes the bulk worker once the critical lane is idle. */
  private criticalIdle: (() => void)[] = [];

  constructor(private readonly options: WebhookOptions, private readonly log: Logger) {
    this.attempts = options.attempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.timeoutMs = options.timeoutMs ?? 5000;
    const lane = (priority: Priority, cap: number): Lane => ({ priority, cap, queue: [], running: false, dropped: new Map() });
    this.critical = lane('critical', options.maxQueue ?? 10_000);
    this.bulk = lane('bulk', options.maxBulkQueue ?? 1_000);
  }

  send(event: Event): void {
    const lane = CRITICAL.has(String(event.event)) ? this.critical : this.bulk;
    if (lane.queue.length >= lane.cap) return this.drop(lane, String(event.event));
    lane.queue.push(event);
    if (!lane.running) void this.drain(lane);
  }

  /** Events waiting (not counting one in flight) per class; each is at most its cap. */
  pending(): Record<Priority, number> {
    return { critical: this.critical.queue.length, bulk: this.bulk.queue.length };
  }

  /** Resolves once everything queued has been delivered or given up on. */
  async idle(): Promise<void> {
    while (this.busy(this.critical) || this.busy(this.bulk)) await new Promise((r) => setTimeout(r, 10));
  }

  private busy(lane: Lane): boolean {
    return lane.running || lane.queue.length > 0;
  }

  /** Logs the first drop of a burst at once and the rest as one count when the lane empties: a flood must not become a log flood. */
  private drop(lane: Lane, name: string): void {
    if (lane.dropped.size === 0) this.log.warn({ event: 'webhook_dropped', priority: lane.priority, securityEvent: name }, 'webhook queue full; event dropped');
    lane.dropped.set(name, (lane.dropped.get(name) ?? 0) + 1);
  }

  private async drain(lane: Lane): Promise<void> {
    lane.running = true;
    try {
      for (let event = lane.queue.shift(); event; event = lane.queue.shift()) await this.deliver(event, lane);
    } finally {
      lane.running = false;
      if (lane.dropped.size > 0) {
        this.log.warn({ event: 'webhook_dropped', priority: lane.priority, dropped: Object.fromEntries(lane.dropped) }, 'webhook events dropped while the queue was full');
        lane.dropped.clear();
      }
      if (lane === this.critical) for (const wake of this.criticalIdle.splice(0)) wake();
    }
  }

  /**
   * Every attempt sends the same body, so the same `id` (F4-02): with the signed `at`, a receiver can
   * refuse a stale delivery and drop a retry it already has.
   */
  private async deliver(event: Event, lane: Lane): Promise<void> {
    const body = JSON.stringify({ ...event, id: newId() });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.secret) headers['x-rotor-signature'] = `sha256=${createHmac('sha256', this.options.secret).update(body).digest('hex')}`;
    let failure: Failure | null = null;
    for (let attempt = 1; attempt <= this.attempts; attempt += 1) {
      // Checked before every attempt, retries included, so a critical event that arrives mid-backoff goes next.
      while (lane === this.bulk && this.busy(this.critical)) await new Promise<void>((r) => this.criticalIdle.push(r));
      failure = await this.post(body, headers);
      if (failure === null) return;
      if (attempt < this.attempts) await new Promise((r) => setTimeout(r, this.baseDelayMs * 2 ** (attempt - 1)));
    }
    this.log.warn({ event: 'webhook_failed', securityEvent: event.event, reason: failure }, 'webhook delivery failed after retries');
  }

  /**
   * One POST: null when delivered, else the class of its failure. A redirect is a failure, never followed
   * (F4-01): following it would re-send the signed body wherever the receiver points, an internal address
   * or plain http.
   */
  private async post(body: string, headers: Record<string, string>): Promise<Failure | null> {
    try {
      const res = await fetch(this.options.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
      await res.body?.cancel();
      if (res.ok) return null;
      return res.status >= 300 && res.status < 400 ? `redirect ${res.status}` : `status ${res.status}`;
    } catch (err) {
      return err instanceof Error && err.name === 'TimeoutError' ? 'timeout' : 'network';
    }
  }
}

/**
 * Why a delivery failed, by class only: never the URL (its path may carry a secret) nor any body or error
 * message (which may quote the URL).
 */
type Failure = `status ${number}` | `redirect ${number}` | 'timeout' | 'network';
