import { newId } from '../domain/ids.js';
import type { Clock } from '../domain/clock.js';
import type { RefreshOutcome } from '../domain/events.js';
import type { ActivityLog, ActivitySample } from '../domain/rotor.js';
import type { Metrics } from './observability.js';

/**
 * The console's charts (SPEC §4.3 `GET /admin/stats`): refreshes per second by outcome, reuse
 * detections and p99 latency over the last hour, from the server's own counters.
 *
 * Server-side samples, kept in the store: every instance (and every ROTOR_WORKERS process) writes what
 * its counters added over each 10-second interval, aligned to the clock, so the chart is the whole
 * fleet's, it shows the last hour the moment the console opens (a client-side ring buffer would start
 * empty and forget on reload), and a restart loses nothing but the interval in flight. The instance that
 * answers adds its interval in progress as a last, partial point: the chart is live to the second.
 * A sample is one small row per instance per 10 s (360 an hour), pruned after two hours.
 */
export const SAMPLE_EVERY_MS = 10_000;
export const CHART_WINDOW_MS = 3600_000;

const OUTCOMES: readonly RefreshOutcome[] = ['rotated', 'retry', 'reuse', 'refused'];

/** Routes whose requests are the service's traffic: everything but the console, the admin API and operations. */
function isServiceRoute(route: string): boolean {
  return !/^\/(admin|console)(\/|$)/.test(route) && !['/healthz', '/readyz', '/metrics', '/openapi.json'].includes(route);
}

/** Cumulative counters of this process at one moment. */
interface Counters {
  refresh: Record<RefreshOutcome, number>;
  requests: number;
  /** Latency histogram of the service routes: upper bounds (seconds, +Inf last as Infinity) and cumulative counts. */
  le: number[];
  cumulative: number[];
}

/** What one instance's counters added over one interval: the `data` of an ActivitySample. */
export interface IntervalData {
  intervalMs: number;
  refresh: Record<RefreshOutcome, number>;
  requests: number;
  /** Finite upper bounds in seconds; `cumulative` has one more entry, the +Inf bucket (the count). */
  le: number[];
  cumulative: number[];
}

export interface ActivityPoint {
  at: string;
  /** Seconds this point covers (10, or less for the partial last one). */
  seconds: number;
  partial: boolean;
  refreshPerSecond: Record<RefreshOutcome, number>;
  reuse: number;
  requestsPerSecond: number;
  /** Of the service routes; null when no request finished in the interval. */
  p99Ms: number | null;
}

export interface ActivitySeries {
  now: string;
  stepSeconds: number;
  windowSeconds: number;
  /** Instances that reported in the window. */
  instances: number;
  /** The instance that answered (its partial point is the last). */
  instance: string;
  points: ActivityPoint[];
}

export class ActivitySampler {
  readonly instance = newId();
  private last: { at: number; counters: Counters } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly metrics: Metrics, private readonly store: ActivityLog, private readonly clock: Clock) {}

  /** Starts sampling at the next 10-second boundary of the clock. */
  async start(): Promise<void> {
    if (this.timer !== null) return;
    this.last = { at: this.clock.now(), counters: await this.read() };
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    const wait = SAMPLE_EVERY_MS - (now % SAMPLE_EVERY_MS);
    this.timer = setTimeout(() => void this.sample().finally(() => this.schedule()), Math.max(50, wait));
    this.timer.unref();
  }

  /** Writes the interval since the last sample (aligned down to a 10-second boundary); failures are dropped. */
  async sample(): Promise<void> {
    const at = Math.floor(this.clock.now() / SAMPLE_EVERY_MS) * SAMPLE_EVERY_MS;
    const counters = await this.read();
    const previous = this.last;
    // A timer that fires before the clock has crossed into a new interval (a test's fixed clock, a
    // clock stepped back) keeps the baseline: moving it would drop the interval's counts from the chart.
    if (previous && at <= previous.at) return;
    this.last = { at, counters };
    if (!previous) return;
    try {
      await this.store.recordActivity({ instance: this.instance, at, data: { ...difference(previous.counters, counters, at - previous.at) } });
    } catch {
      // The store is down: this interval is missing from the chart; the counters themselves are intact.
    }
  }

  /** The fleet's last hour in 10-second steps, and this instance's interval in progress. */
  async series(windowMs = CHART_WINDOW_MS): Promise<ActivitySeries> {
    const now = this.clock.now();
    // A timer that is late (a blocked loop, a clock that jumped) has not closed the last interval yet:
    // close it now, so the live point never covers more than the interval in progress.
    if (this.last && Math.floor(now / SAMPLE_EVERY_MS) * SAMPLE_EVERY_MS > this.last.at) await this.sample();
    const since = now - windowMs;
    const samples = await this.store.listActivity(since);
    const buckets = new Map<number, IntervalData[]>();
    const instances = new Set<string>();
    for (const sample of samples) {
      const data = asInterval(sample);
      if (!data) continue;
      instances.add(sample.instance);
      const at = Math.ceil(sample.at / SAMPLE_EVERY_MS) * SAMPLE_EVERY_MS;
      buckets.set(at, [...(buckets.get(at) ?? []), data]);
    }
    const points = [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([at, parts]) => point(at, SAMPLE_EVERY_MS, false, parts));
    if (this.last) {
      const elapsed = now - this.last.at;
      if (elapsed > 0) {
        const live = difference(this.last.counters, await this.read(), elapsed);
        points.push(point(now, elapsed, true, [live]));
        instances.add(this.instance);
      }
    }
    return {
      now: new Date(now).toISOString(), stepSeconds: SAMPLE_EVERY_MS / 1000, windowSeconds: windowMs / 1000,
      instances: instances.size, instance: this.instance, points,
    };
  }

  private async read(): Promise<Counters> {
    const refresh = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<RefreshOutcome, number>;
    for (const v of (await this.metrics.refreshes.get()).values) {
      const outcome = v.labels.outcome as RefreshOutcome;
      if (outcome in refresh) refresh[outcome] += v.value;
    }
    let requests = 0;
    for (const v of (await this.metrics.requests.get()).values) if (isServiceRoute(String(v.labels.route ?? ''))) requests += v.value;
    const byLe = new Map<number, number>();
    for (const v of (await this.metrics.latency.get()).values) {
      if (v.metricName !== 'rotor_http_request_duration_seconds_bucket' || !isServiceRoute(String(v.labels.route ?? ''))) continue;
      const bound = (v.labels as Record<string, unknown>).le;
      const le = bound === '+Inf' ? Infinity : Number(bound);
      byLe.set(le, (byLe.get(le) ?? 0) + v.value);
    }
    const le = [...byLe.keys()].sort((a, b) => a - b);
    if (le.length === 0) le.push(Infinity);
    return { refresh, requests, le, cumulative: le.map((b) => byLe.get(b) ?? 0) };
  }
}

function difference(before: Counters, after: Counters, intervalMs: number): IntervalData {
  const refresh = Object.fromEntries(OUTCOMES.map((o) => [o, Math.max(0, after.refresh[o] - before.refresh[o])])) as Record<RefreshOutcome, number>;
  const previous = new Map(before.le.map((b, i) => [b, before.cumulative[i] ?? 0]));
  const cumulative = after.le.map((b, i) => Math.max(0, (after.cumulative[i] ?? 0) - (previous.get(b) ?? 0)));
  return {
    intervalMs, refresh, requests: Math.max(0, after.requests - before.requests),
    le: after.le.filter((b) => Number.isFinite(b)), cumulative: Number.isFinite(after.le.at(-1) ?? Infinity) ? [...cumulative, cumulative.at(-1) ?? 0] : cumulative,
  };
}

/** A stored sample's data, checked: it is JSON another instance (or release) wrote. */
function asInterval(sample: ActivitySample): IntervalData | null {
  const d = sample.data as Partial<IntervalData>;
  const numbers = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!d || typeof d.intervalMs !== 'number' || typeof d.requests !== 'number' || !numbers(d.le) || !numbers(d.cumulative)) return null;
  if (d.cumulative.length !== d.le.length + 1 || typeof d.refresh !== 'object' || d.refresh === null) return null;
  const refresh = Object.fromEntries(OUTCOMES.map((o) => [o, Number((d.refresh as Record<string, unknown>)[o]) || 0])) as Record<RefreshOutcome, number>;
  return { intervalMs: d.intervalMs, requests: d.requests, le: d.le, cumulative: d.cumulative, refresh };
}

function point(at: number, coveredMs: number, partial: boolean, parts: IntervalData[]): ActivityPoint {
  const seconds = Math.max(coveredMs, 1) / 1000;
  const refresh = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<RefreshOutcome, number>;
  let requests = 0;
  const histogram = new Map<number, number>();
  for (const part of parts) {
    for (const o of OUTCOMES) refresh[o] += part.refresh[o];
    requests += part.requests;
    [...part.le, Infinity].forEach((b, i) => histogram.set(b, (histogram.get(b) ?? 0) + (part.cumulative[i] ?? 0)));
  }
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return {
    at: new Date(at).toISOString(), seconds: round(seconds), partial,
    refreshPerSecond: Object.fromEntries(OUTCOMES.map((o) => [o, round(refresh[o] / seconds)])) as Record<RefreshOutcome, number>,
    reuse: refresh.reuse,
    requestsPerSecond: round(requests / seconds),
    p99Ms: quantileMs(0.99, histogram),
  };
}

/**
 * The q-quantile of a cumulative histogram, as Prometheus' histogram_quantile estimates it: linear
 * within the bucket that holds it; the largest finite bound when it falls in the +Inf bucket.
 */
export function quantileMs(q: number, cumulativeByLe: Map<number, number>): number | null {
  const bounds = [...cumulativeByLe.keys()].sort((a, b) => a - b);
  const total = cumulativeByLe.get(Infinity) ?? Math.max(0, ...bounds.map((b) => cumulativeByLe.get(b) ?? 0));
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = cumulativeByLe.get(bound) ?? 0;
    if (count >= rank) {
      if (!Number.isFinite(bound)) return Math.round(lower * 1000 * 100) / 100;
      const inBucket = count - below;
      const within = inBucket > 0 ? (rank - below) / inBucket : 1;
      return Math.round((lower + (bound - lower) * within) * 1000 * 100) / 100;
    }
    lower = bound;
    below = count;
  }
  return Math.round(lower * 1000 * 100) / 100;
}
