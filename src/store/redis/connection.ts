import { Cluster } from 'ioredis';
import { StoreUnavailableError } from '../../domain/errors.js';
import { str } from './codec.js';
import { RedisKeys } from './keys.js';
import * as lua from './lua.js';
import { Router, type Op } from './router.js';
import type { RedisClusterOptions } from '../../config/redis_url.js';

/**
 * Redis migrations keep the SQL stores' numbering, so that one schema version means one data model
 * everywhere (the shared conformance suite builds databases "as an older Rotor left them" by version).
 * Hash fields absent are null, so most versions need no data change here; only 3 does (see lua.MIGRATE).
 */
export const REDIS_SCHEMA_VERSION = 9;

/** Session ids → where the session lives (immutable), cached per process: most lookups are one round trip. */
const LOCATION_CACHE_MAX = 100_000;
/** How often a script that acts on a set's members reads the set again when it changed meanwhile. */
const SET_READS = 8;

export interface RedisStoreOptions extends RedisClusterOptions {
  /**
   * How long an operation may take (redirections, failover, a node that stopped answering) before it
   * is 503; default 3000 ms. A durable one gets at least `waitMs` + 500 ms.
   */
  timeoutMs?: number;
  /** How long the first connection may take (`migrate`); default 5000 ms. */
  connectTimeoutMs?: number;
}

export interface Location {
  appId: string;
  /** The subject's base: `P:{P:<bucket>}:<tag>:`. */
  base: string;
}

/** The cluster connection, op routing, migrations and the session-location cache, shared by the store's parts. */
export class RedisConnection {
  readonly keys: RedisKeys;
  readonly cluster: Cluster;
  /** An operation's deadline, from when it is sent. */
  readonly timeoutMs: number;
  private readonly router: Router;
  private readonly locations = new Map<string, Location>();
  private ready: Promise<void> | null = null;
  private closing: Promise<void> | null = null;

  constructor(readonly options: RedisStoreOptions) {
    this.keys = new RedisKeys(options.prefix);
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.cluster = new Cluster(options.seeds, {
      scaleReads: 'master',
      lazyConnect: true,
      enableOfflineQueue: false,
      slotsRefreshInterval: 2000,
      slotsRefreshTimeout: 1000,
      clusterRetryStrategy: (times: number) => Math.min(100 * times, 2000),
      redisOptions: {
        username: options.username ?? undefined,
        password: options.password ?? undefined,
        tls: options.tls ? {} : undefined,
        connectTimeout: 1000,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        enableReadyCheck: true,
      },
    });
    // Node errors surface through the operations that meet them (503); without a listener they would crash the process.
    this.cluster.on('error', () => {});
    this.cluster.on('node error', () => {});
    this.router = new Router(this.cluster, {
      minReplicas: options.minReplicas, waitMs: options.waitMs, timeoutMs: this.timeoutMs, scripts: lua.ALL_SCRIPTS,
    });
  }

  /** Connects once (the seed nodes, then the whole topology); StoreUnavailableError when no node answers in time. */
  private connected(): Promise<void> {
    this.ready ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.ready = null;
        reject(new StoreUnavailableError(new Error(`no Redis Cluster node answered at ${this.options.seeds.map((s) => `${s.host}:${s.port}`).join(', ')}`)));
      }, this.options.connectTimeoutMs ?? 5000);
      this.cluster.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.cluster.status === 'ready') {
        clearTimeout(timer);
        resolve();
      } else if (this.cluster.status === 'wait') {
        this.cluster.connect().catch(() => { /* retried by clusterRetryStrategy; the timer reports it */ });
      }
    });
    return this.ready;
  }

  async value(op: Op, timeoutMs?: number): Promise<unknown> {
    if (this.closing) throw new StoreUnavailableError(new Error('the store is closed'));
    await this.connected();
    return this.router.value(op, timeoutMs);
  }

  /** A script on the keys it names (`keys[0]` routes it); `write`: answered once replicated. */
  run(script: lua.LuaScript, keys: string[], args: unknown[], options: { write?: boolean; resendable?: boolean } = {}): Promise<unknown> {
    const write = options.write ?? false;
    return this.value({ key: keys[0]!, keys: keys.slice(1), script, args: args.map(str), durable: write, resendable: options.resendable ?? !write });
  }

  read(key: string, command: string, args: unknown[] = []): Promise<unknown> {
    return this.value({ key, command, args: args.map(str), resendable: true });
  }

  write(key: string, command: string, args: unknown[] = []): Promise<unknown> {
    return this.value({ key, command, args: args.map(str), durable: true });
  }

  /**
   * Runs a script on a set's members: reads the set, passes its members' keys and ids, and reads again
   * while the script answers that the set changed meanwhile.
   */
  async withMembers(set: string, keyOf: (id: string) => string, attempt: (keys: string[], ids: string[]) => Promise<unknown>): Promise<unknown> {
    for (let i = 0; i < SET_READS; i += 1) {
      const ids = ((await this.read(set, 'SMEMBERS')) as string[]).sort();
      const reply = await attempt(ids.map(keyOf), ids);
      if (reply !== 'changed' && !(Array.isArray(reply) && reply[0] === 'changed')) return reply;
    }
    throw new StoreUnavailableError(new Error('a set kept changing under a script'));
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────────────

  async migrate(): Promise<void> {
    const d = this.keys.dir;
    const names = (await this.read(`${d}names`, 'HGETALL')) as unknown[];
    const apps: string[] = [];
    for (let i = 1; i < names.length; i += 2) apps.push(`${d}app:${String(names[i])}`);
    const reply = (await this.run(lua.MIGRATE, [this.keys.schema, `${d}names`, ...apps], [REDIS_SCHEMA_VERSION, Date.now()], { write: true })) as [string, number];
    if (reply[0] === 'newer') {
      throw new Error(`the database schema is at version ${reply[1]}, newer than this Rotor (${REDIS_SCHEMA_VERSION}); upgrade Rotor`);
    }
  }

  /** Every master answers (a stopped one makes /readyz 503 even if the directory's master is fine). */
  async ping(): Promise<void> {
    await this.value({ key: this.keys.schema, command: 'EXISTS', args: [], resendable: true }, 1500);
    const masters = this.cluster.nodes('master');
    await Promise.all(masters.map(async (node) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreUnavailableError(new Error(`the Redis node at ${node.options.host}:${node.options.port} did not answer`))), 1500);
      });
      try {
        await Promise.race([node.ping().catch((err: unknown) => { throw new StoreUnavailableError(err); }), late]);
      } finally {
        clearTimeout(timer);
      }
    }));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.router.failAll();
      await this.cluster.quit().catch(() => this.cluster.disconnect());
    })();
    return this.closing;
  }

  // ── where things live ──────────────────────────────────────────────────────────────────────────

  remember(id: string, location: Location): void {
    if (this.locations.size >= LOCATION_CACHE_MAX) this.locations.clear();
    this.locations.set(id, location);
  }

  forget(id: string): void {
    this.locations.delete(id);
  }

  /** Where a session lives, from the cache or its index; null: no such session. */
  async locate(id: string): Promise<Location | null> {
    const cached = this.locations.get(id);
    if (cached) return cached;
    const value = await this.read(this.keys.sessionIndex(id), 'GET');
    if (typeof value !== 'string') return null;
    const [appId, base] = value.split('\n') as [string, string];
    const location = { appId, base };
    this.remember(id, location);
    return location;
  }

  /** The app's id and key version (null: the app is gone), read with the hot queries (S2-13). */
  appState(appId: string): Promise<unknown> {
    return this.read(`${this.keys.dir}app:${appId}`, 'HMGET', ['id', 'keys_version']);
  }

  /** The keys of a subject's session: the session, its bucket's prune index and seal index. */
  sessionKeys(base: string, id: string): [string, string, string] {
    const bucket = this.keys.bucketOf(base);
    return [`${base}s:${id}`, this.keys.expiries(bucket), this.keys.seals(bucket)];
  }
}
