import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { Observer } from '../domain/events.js';
import type { WebhookSink } from './webhook.js';

/** Prometheus metrics of one server. Labels are route patterns, outcomes and reasons: never tokens or ids. */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'rotor_http_requests_total', help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'], registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'rotor_http_request_duration_seconds', help: 'HTTP request latency by route pattern',
    labelNames: ['route'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly refreshes = new Counter({
    name: 'rotor_refresh_total', help: 'Refresh outcomes: rotated, retry (grace-window replay), reuse (theft signal), refused, by reason',
    labelNames: ['outcome', 'reason'], registers: [this.registry],
  });
  readonly reuse = new Counter({
    name: 'rotor_reuse_detected_total', help: 'Sessions revoked because a consumed refresh token came back', registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'rotor_security_events_total', help: 'Security events by type', labelNames: ['event'], registers: [this.registry],
  });
  readonly verifierFailures = new Counter({
    name: 'rotor_dpop_verifier_failures_total',
    help: 'Failures of the DPoP proof-signature thread (not_created, exited, silent); proofs are then checked on the thread pool for 30 s',
    labelNames: ['failure'], registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'rotor_store_errors_total', help: 'Requests answered 503 because the store was unavailable', registers: [this.registry],
  });
  readonly connectionsClosed = new Counter({
    name: 'rotor_connections_closed_total', help: 'Connections the server closed: reason pipelining (more than 64 requests unanswered on one)',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly busyRefusals = new Counter({
    name: 'rotor_busy_refusals_total', help: 'Requests answered 503 server_busy: too many DPoP proofs waiting to be checked, or too many requests pipelined on one connection', registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'rotor_' });
  }
}

/** Connects the domain's observations to metrics, structured logs (`event` field, ids only) and the webhook. */
export function observerFor(metrics: Metrics, log: Logger, webhook?: WebhookSink): Observer {
  return {
    refresh(outcome, reason) {
      metrics.refreshes.inc({ outcome, reason });
      if (outcome === 'reuse') metrics.reuse.inc();
    },
    event(event, fields, at) {
      metrics.events.inc({ event });
      log.warn({ event, ...fields }, event.replace(/_/g, ' '));
      webhook?.send({ event, at: new Date(at ?? Date.now()).toISOString(), ...fields });
    },
  };
}
