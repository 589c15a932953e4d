import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';

export interface WebhookOptions {
  url: string;
  /** Signs each body: `X-Rotor-Signature: sha256=<hex HMAC of the body>`. */
  secret: string | null;
  /** Attempts per event (first try included). */
  attempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
  /** Events beyond this many waiting are dropped (and logged), so a dead receiver cannot grow memory. */
  maxQueue?: number;
}

/**
 * Delivers security events to an HTTP endpoint, one JSON POST each, retried with exponential backoff.
 * Delivery is asynchronous and never delays or fails the request that caused the event.
 */
export class WebhookSink {
  private readonly queue: Record<string, unknown>[] = [];
  private running = false;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly timeoutMs: number;
  private readonly maxQueue: number;

  constructor(private readonly options: WebhookOptions, private readonly log: Logger) {
    this.attempts = options.attempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxQueue = options.maxQueue ?? 10_000;
  }

  send(event: Record<string, unknown>): void {
    if (this.queue.length >= this.maxQueue) {
      this.log.warn({ event: 'webhook_dropped' }, 'webhook queue full; event dropped');
      return;
    }
    this.queue.push(event);
    if (!this.running) void this.drain();
  }

  /** Resolves once everything queued has been delivered or given up on. */
  async idle(): Promise<void> {
    while (this.running || this.queue.length > 0) await new Promise((r) => setTimeout(r, 10));
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let event = this.queue.shift(); event; event = this.queue.shift()) await this.deliver(event);
    } finally {
      this.running = false;
    }
  }

  private async deliver(event: Record<string, unknown>): Promise<void> {
    const body = JSON.stringify(event);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.secret) headers['x-rotor-signature'] = `sha256=${createHmac('sha256', this.options.secret).update(body).digest('hex')}`;
    for (let attempt = 1; attempt <= this.attempts; attempt += 1) {
      try {
        const res = await fetch(this.options.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
        await res.body?.cancel();
        if (res.ok) return;
      } catch {
        // retried below
      }
      if (attempt < this.attempts) await new Promise((r) => setTimeout(r, this.baseDelayMs * 2 ** (attempt - 1)));
    }
    this.log.warn({ event: 'webhook_failed', securityEvent: event.event }, 'webhook delivery failed after retries');
  }
}
