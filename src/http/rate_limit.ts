import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RotorError } from '../domain/errors.js';
import type { Clock } from '../domain/clock.js';
import type { RateLimits } from '../config.js';
import type { RouteClass, RouteClassRule } from './dialect.js';
import { rateBucketOf } from './rate_bucket.js';
import { clientAddressOf } from './client_context.js';
import { refusalKinds } from './api.js';

export { DEFAULT_RATE_LIMITS, type RateLimits } from '../config.js';

/** Where instances pool their counts: adds this instance's hits for a window, returns the totals. */
export interface SharedCounter {
  addRateHits(input: { windowStart: number; hits: { key: string; count: number }[] }): Promise<Map<string, number>>;
}

const WINDOW_MS = 60_000;
const SYNC_MS = 1000;

/** The core's own classed routes (native and OAuth); each dialect lists its own (`DialectHttp.routeClasses`). */
export const CORE_ROUTE_CLASSES: readonly RouteClassRule[] = [
  { url: '/v1/refresh', class: 'refresh' },
  { url: '/oauth2/token', class: 'refresh' },
  { url: '/v1/apps/:app/login', class: 'login' },
  { url: '/v1/apps/:app/sessions', class: 'issue', methods: ['POST'] },
];

function classOf(rules: readonly RouteClassRule[], request: FastifyRequest, prefix = ''): RouteClass | 'admin' | null {
  const routed = request.routeOptions.url ?? '';
  const url = prefix !== '' && routed.startsWith(prefix) ? routed.slice(prefix.length) : routed;
  if (url.startsWith('/admin')) return 'admin';
  const rule = rules.find((r) => r.url === url && (r.methods === undefined || r.methods.includes(request.method)));
  return rule?.class ?? null;
}

/**
 * Fixed one-minute windows counted locally and pooled through the store every second, so every
 * instance sees (within a second) what all of them counted, without a store write per request.
 * When the store cannot be reached, each instance goes on with its own counts (fail-open for limits only).
 */
export class RateLimiter {
  private windowStart = 0;
  /** Totals of all instances as of the last sync (including this instance's synced hits). */
  private shared = new Map<string, number>();
  /** Hits not yet pooled. */
  private pending = new Map<string, number>();
  private syncing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly limits: RateLimits,
    private readonly clock: Clock,
    private readonly counter: SharedCounter | null,
    private readonly log: Logger,
    /** Every classed route: CORE_ROUTE_CLASSES and the routes of the dialects the server speaks. */
    private readonly routes: readonly RouteClassRule[] = CORE_ROUTE_CLASSES,
  ) {}

  start(): void {
    if (this.counter && !this.timer) {
      this.timer = setInterval(() => void this.sync(), SYNC_MS);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sync();
  }

  private roll(): void {
    const start = Math.floor(this.clock.now() / WINDOW_MS) * WINDOW_MS;
    if (start !== this.windowStart) {
      this.windowStart = start;
      this.shared = new Map();
      this.pending = new Map();
    }
  }

  private count(key: string): number {
    return (this.shared.get(key) ?? 0) + (this.pending.get(key) ?? 0);
  }

  hit(key: string): void {
    this.roll();
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
  }

  /** Seconds until the current window ends. */
  retryAfter(): number {
    return Math.max(1, Math.ceil((this.windowStart + WINDOW_MS - this.clock.now()) / 1000));
  }

  /** Refuses when `key` already reached `limit` in this window. */
  check(key: string, limit: number): void {
    this.roll();
    if (this.count(key) >= limit) throw new RotorError('rate_limited', `too many requests; retry in ${this.retryAfter()} s`, { retryAfter: this.retryAfter() });
  }

  async sync(): Promise<void> {
    if (!this.counter) return;
    if (this.syncing) return this.syncing;
    this.roll();
    const windowStart = this.windowStart;
    const pending = this.pending;
    if (pending.size === 0 && this.shared.size === 0) return;
    this.pending = new Map();
    const hits = [...pending].map(([key, count]) => ({ key, count }));
    this.syncing = (async () => {
      try {
        const totals = await this.counter!.addRateHits({ windowStart, hits });
        if (windowStart === this.windowStart) for (const [key, total] of totals) this.shared.set(key, total);
      } catch {
        // Keep counting locally; the hits are pooled again with the next sync.
        if (windowStart === this.windowStart) for (const [key, count] of pending) this.pending.set(key, (this.pending.get(key) ?? 0) + count);
        this.log.debug({ event: 'rate_limit_sync_failed' }, 'rate-limit counts could not be pooled');
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  /**
   * Wires the limits into a server: checked before routing decisions, failures counted after.
   * `appIdOf` turns the app a path names (its name, its id in any letter case) into its canonical id,
   * or null when there is no such app, so that one app is one budget however it is spelled (S2-08).
   * `prefix`: where the APIs are mounted (rotorPlugin in a host's server); routes are classed without it.
   */
  register(app: FastifyInstance, onLimited: () => void, appIdOf: (ref: string) => Promise<string | null>, prefix = ''): void {
    const { limits } = this;
    // The client's per-ip bucket: its address without a proxy's port, IPv6 by its prefix (rate_bucket.ts).
    const bucketOf = (request: FastifyRequest) => rateBucketOf(clientAddressOf(request), limits.ipv6Prefix);
    // Admin calls are counted when the request arrives, before the admin scope's own token check
    // refuses a wrong token: otherwise guesses of the admin token would never be limited. Only calls that
    // carry an Authorization header, the admin token's one place: a foreign page can make the operator's
    // browser send any number of bare no-cors GETs, never that header (it needs a preflight, refused here).
    app.addHook('onRequest', async (request) => {
      if (classOf(this.routes, request, prefix) !== 'admin' || request.headers.authorization === undefined) return;
      const ip = bucketOf(request);
      try {
        this.check(`a:${ip}`, limits.adminPerIp);
        this.hit(`a:${ip}`);
      } catch (err) {
        onLimited();
        throw err;
      }
    });
    app.addHook('preHandler', async (request) => {
      const kind = classOf(this.routes, request, prefix);
      if (!kind || kind === 'admin') return;
      const ip = bucketOf(request);
      const params = request.params as Record<string, unknown> | undefined;
      const ref = params?.app ?? params?.app_id;
      // An app that does not exist issues nothing: its handler answers 404/403 without a budget.
      const appId = kind === 'issue' && typeof ref === 'string' ? await appIdOf(ref) : null;
      if (kind === 'issue' && appId === null) return;
      try {
        if (kind === 'refresh') {
          this.check(`rf:${ip}`, limits.refreshFailuresPerIp);
          this.check(`r:${ip}`, limits.refreshPerIp);
          this.hit(`r:${ip}`);
        } else if (kind === 'login') {
          this.check(`l:${ip}`, limits.loginPerIp);
          const user = loginName(request);
          if (user !== null) this.check(`lf:${ip}:${user}`, limits.loginFailuresPerUser);
          this.hit(`l:${ip}`);
        } else if (kind === 'issue') {
          this.check(`i:${appId}`, limits.issuePerApp);
          this.hit(`i:${appId}`);
        }
      } catch (err) {
        onLimited();
        throw err;
      }
    });
    // Failures are guesses refused. A refresh failed when what it presented (a token, its proof, an app
    // key) was judged and not honoured; one refused for its origin, shape or method guessed nothing, and a
    // foreign page can send those. A login naming a user failed however it was refused (a malformed
    // signature or an unknown user is a guess too) unless for its origin (its body is never read then).
    app.addHook('onResponse', async (request) => {
      const refusal = refusalKinds.get(request);
      if (refusal === undefined || refusal === 'rate_limited' || refusal === 'unavailable' || refusal === 'internal' || refusal === 'forbidden') return;
      const kind = classOf(this.routes, request, prefix);
      if (kind === 'refresh' && refusal !== 'refused' && refusal !== 'client_auth') return;
      const ip = bucketOf(request);
      if (kind === 'refresh') this.hit(`rf:${ip}`);
      if (kind === 'login') {
        const user = loginName(request);
        if (user !== null) this.hit(`lf:${ip}:${user}`);
      }
    });
  }
}

/** The username a login request names, in whichever form its API takes it. */
function loginName(request: FastifyRequest): string | null {
  const body = request.body as Record<string, unknown> | undefined;
  const name = body?.username ?? body?.email;
  if (typeof name === 'string') return name.slice(0, 256).toLowerCase();
  const auth = request.headers.authorization;
  if (typeof auth === 'string' && /^basic /i.test(auth)) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    return decoded.split(':')[0]?.slice(0, 256).toLowerCase() ?? null;
  }
  return null;
}
