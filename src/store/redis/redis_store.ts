import { createHash, randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { decodeTime } from 'ulid';
import { StoreUnavailableError } from '../../domain/errors.js';
import type {
  App, AppKeyRecord, Millis, RefreshRecord, Session, SigningKeyRecord, Subject, SubjectStatus,
} from '../../domain/types.js';
import {
  UPGRADED, type ActivitySample, type FoundLegacyRefresh, type FoundSession, type NewSecurityEventRecord, type RotateInput, type SecurityEventRecord,
  type Store, type SubjectColumns, type SubjectListing, type TouchInput,
} from '../../domain/store.js';
import { clampLimit } from '../activity_rows.js';
import {
  appFromRow, appKeyFromRow, MAX_GRACE_MS, RATE_WINDOWS_KEPT_MS, rateTotals, refreshFromRow, sessionFromRow, signingKeyFromRow,
  storedRateKey, subjectFromRow,
} from '../rows.js';
import * as lua from './lua.js';
import { Router, type Op } from './router.js';
import type { RedisClusterOptions } from '../../config/redis_url.js';

type Row = Record<string, unknown>;

/**
 * Redis migrations keep the SQL stores' numbering, so that one schema version means one data model
 * everywhere (the shared conformance suite builds databases "as an older Rotor left them" by version).
 * Hash fields absent are null, so most versions need no data change here; only 3 does (see lua.MIGRATE).
 */
export const REDIS_SCHEMA_VERSION = 7;

/** Fields stored base64 (binary in the records). */
const BINARY_FIELDS = new Set(['secret_hash', 'private_sealed', 'successor_sealed']);

/** Session ids → where the session lives (immutable), cached per process: most lookups are one round trip. */
const LOCATION_CACHE_MAX = 100_000;

export interface RedisStoreOptions extends RedisClusterOptions {
  /** How long an operation may wait for the cluster (redirections, failover) before 503; default 3000 ms. */
  timeoutMs?: number;
  /** How long the first connection may take (`migrate`); default 5000 ms. */
  connectTimeoutMs?: number;
}

interface Location {
  appId: string;
  /** The subject's base: `P:{P:<tag>}:`. */
  base: string;
}

const opt = (v: string | null | undefined): string => (v === null || v === undefined ? '' : `=${v}`);
const str = (v: unknown): string => (typeof v === 'number' ? String(v) : String(v));

/** A flat HGETALL reply as a row; binary fields decoded. */
function rowOf(flat: unknown): Row | null {
  if (!Array.isArray(flat) || flat.length === 0) return null;
  const row: Row = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = String(flat[i]);
    const value = flat[i + 1];
    row[field] = BINARY_FIELDS.has(field) ? Buffer.from(String(value), 'base64') : value;
  }
  return row;
}

/** A record's fields as the JSON object the scripts write (strings only; nulls left out). */
function fields(values: Record<string, unknown>): string {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === null || v === undefined) continue;
    if (Buffer.isBuffer(v)) out[k] = v.toString('base64');
    else if (typeof v === 'boolean') out[k] = v ? '1' : '0';
    else if (typeof v === 'object') out[k] = JSON.stringify(v);
    else out[k] = String(v);
  }
  return JSON.stringify(out);
}

const appRow = (row: Row): App => appFromRow({ ...row, public: row.public === '1' });

export function sessionColumns(s: Session): Record<string, unknown> {
  const chain = s.refresh;
  return {
    id: s.id, app_id: s.appId, subject: s.subject, claims: JSON.stringify(s.claims), audience: s.audience, created_at: s.createdAt,
    last_renewed_at: s.lastRenewedAt, expires_at: s.expiresAt, ip: s.ip, user_agent: s.userAgent, last_ip: s.lastIp,
    last_user_agent: s.lastUserAgent, revoked_at: s.revokedAt, revoke_reason: s.revokeReason, horizon_at: s.horizonAt, locator: s.locator,
    dpop_jkt: s.dpopJkt ?? null,
    generation: chain?.generation ?? 0, refresh_issued_at: chain?.issuedAt, refresh_not_before: chain?.notBefore,
    refresh_expires_at: chain?.expiresAt, successor_sealed: chain?.successorSealed,
  };
}

/** The key layout, for the store and for tests that build a database as an older Rotor left it. */
export class RedisKeys {
  constructor(readonly prefix: string) {}
  /** The directory slot: schema version, apps, app keys, signing keys. */
  get dir(): string { return `${this.prefix}:{${this.prefix}}:`; }
  get schema(): string { return `${this.dir}schema`; }
  /** A subject's slot: the subject, its sessions and their pre-upgrade records share one hash tag. */
  subject(appId: string, subject: string): string {
    const tag = createHash('sha256').update(appId).update('\u0000').update(subject).digest('base64url').slice(0, 22);
    return `${this.prefix}:{${this.prefix}:${tag}}:`;
  }
  /** Indexes across slots (written before the record they point to): session id, locator, pre-upgrade record id. */
  sessionIndex(id: string): string { return `${this.prefix}:sid:${id}`; }
  locatorIndex(locator: string): string { return `${this.prefix}:loc:${locator}`; }
  legacyIndex(id: string): string { return `${this.prefix}:lg:${id}`; }
  dpop(key: string): string { return `${this.prefix}:dp:${createHash('sha256').update(key).digest('base64url')}`; }
  /** An app's lists across slots: its subjects (`subjects`, by name) and sessions (`sessions`, by id). */
  app(appId: string): string { return `${this.prefix}:{${this.prefix}:a:${appId}}:`; }
  get events(): string { return `${this.prefix}:{${this.prefix}:ev}:`; }
  get activity(): string { return `${this.prefix}:{${this.prefix}:act}:`; }
  get rate(): string { return `${this.prefix}:{${this.prefix}:rate}:`; }
}

/**
 * Rotor on Redis Cluster (SPEC §7). Each subject's state — the subject, its sessions and their refresh
 * chains — shares one hash slot, so a rotation, a grace retry's read, a reuse revocation, a disable
 * that revokes every session, and an issuance that must not miss that disable are each one script on
 * one shard. Apps, app keys and signing keys share the directory's slot. What spans slots is an index
 * written before the record it points to (session id, locator, pre-upgrade record id → the subject's
 * slot): a reader that finds an index entry without its record finds nothing, and pruning removes such
 * entries once they are old.
 *
 * Durability: every write that answers a request is followed by WAIT on the same connection, and
 * answered only if the master and `minReplicas` replicas have it; otherwise 503. A rotation stays
 * *pending* on its session until its WAIT confirmed it: a rotation whose WAIT gave up is reported as
 * `unconfirmed` to the engine (FoundSession.rotation), so that its parent can be redeemed for the same
 * successor whatever the grace window (SPEC §7); `confirmRotation` makes such a rotation durable.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly keys: RedisKeys;
  private readonly cluster: Cluster;
  private readonly router: Router;
  private readonly locations = new Map<string, Location>();
  private readonly options: RedisStoreOptions;
  private ready: Promise<void> | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: RedisStoreOptions) {
    this.options = options;
    this.keys = new RedisKeys(options.prefix);
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
      minReplicas: options.minReplicas, waitMs: options.waitMs, timeoutMs: options.timeoutMs ?? 3000,
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

  private async value(op: Op, timeoutMs?: number): Promise<unknown> {
    if (this.closing) throw new StoreUnavailableError(new Error('the store is closed'));
    await this.connected();
    return this.router.value(op, timeoutMs);
  }

  private dirOp(script: lua.LuaScript, args: unknown[], write = false): Op {
    return { key: this.keys.schema, script, args: [this.keys.dir, ...args.map(str)], durable: write, resendable: !write };
  }

  private subjOp(base: string, script: lua.LuaScript, args: unknown[], write: boolean, resendable = !write, keys?: string[]): Op {
    return { key: `${base}u`, keys, script, args: [base, ...args.map(str)], durable: write, resendable };
  }

  private read(key: string, command: string, args: unknown[] = []): Op {
    return { key, command, args: args.map(str), resendable: true };
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────────────

  async migrate(): Promise<void> {
    const reply = (await this.value(this.dirOp(lua.MIGRATE, [REDIS_SCHEMA_VERSION, Date.now()], true))) as [string, number];
    if (reply[0] === 'newer') {
      throw new Error(`the database schema is at version ${reply[1]}, newer than this Rotor (${REDIS_SCHEMA_VERSION}); upgrade Rotor`);
    }
  }

  async ping(): Promise<void> {
    await this.value(this.read(this.keys.schema, 'EXISTS'), 1500);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.router.failAll();
      await this.cluster.quit().catch(() => this.cluster.disconnect());
    })();
    return this.closing;
  }

  // ── apps ───────────────────────────────────────────────────────────────────────────────────────

  async createApp(input: { app: App; appKey: AppKeyRecord; signingKey: SigningKeyRecord }): Promise<{ created: boolean }> {
    const { app, appKey, signingKey } = input;
    const created = await this.value(this.dirOp(lua.CREATE_APP, [
      app.id, app.name, fields(appColumns(app)), appKey.id, fields(appKeyColumns(appKey)), signingKey.kid, fields(signingKeyColumns(signingKey)),
    ], true));
    return { created: Number(created) === 1 };
  }

  async findApp(ref: { id?: string; name?: string }): Promise<App | null> {
    const reply = ref.id !== undefined
      ? await this.value(this.read(`${this.keys.dir}app:${ref.id}`, 'HGETALL'))
      : await this.value(this.dirOp(lua.FIND_APP_BY_NAME, [ref.name ?? '']));
    const row = rowOf(flatOf(reply));
    return row ? appRow(row) : null;
  }

  async listApps(): Promise<App[]> {
    const rows = (await this.value(this.dirOp(lua.LIST_APPS, []))) as unknown[];
    return rows.map((r) => appRow(rowOf(r)!)).sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  }

  async updateApp(app: App, expectUpdatedAt: Millis): Promise<{ updated: true } | { updated: false; reason: 'stale' | 'name_taken' }> {
    const { name: _name, ...rest } = appColumns(app);
    const mutable = { name: app.name, public: rest.public, policy: rest.policy, description: rest.description, updated_at: rest.updated_at };
    const reply = String(await this.value(this.dirOp(lua.UPDATE_APP, [app.id, expectUpdatedAt, app.name, fields(mutable)], true)));
    if (reply === 'ok') return { updated: true };
    return { updated: false, reason: reply === 'name_taken' ? 'name_taken' : 'stale' };
  }

  async deleteApp(appId: string): Promise<boolean> {
    return Number(await this.value(this.dirOp(lua.DELETE_APP, [appId], true))) === 1;
  }

  // ── app keys ───────────────────────────────────────────────────────────────────────────────────

  async createAppKey(key: AppKeyRecord): Promise<void> {
    await this.value(this.dirOp(lua.CREATE_APP_KEY, [key.id, key.appId, fields(appKeyColumns(key))], true));
  }

  async findAppKey(id: string): Promise<AppKeyRecord | null> {
    const row = rowOf(flatOf(await this.value(this.read(`${this.keys.dir}ak:${id}`, 'HGETALL'))));
    return row ? appKeyFromRow(row) : null;
  }

  async listAppKeys(appId: string): Promise<AppKeyRecord[]> {
    const rows = (await this.value(this.dirOp(lua.LIST_APP_KEYS, [appId]))) as unknown[];
    return rows.map((r) => appKeyFromRow(rowOf(r)!)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async revokeAppKey(appId: string, id: string, now: Millis): Promise<boolean> {
    return Number(await this.value(this.dirOp(lua.REVOKE_APP_KEY, [appId, id, now], true))) === 1;
  }

  // ── signing keys ───────────────────────────────────────────────────────────────────────────────

  async listSigningKeys(appId: string): Promise<SigningKeyRecord[]> {
    const rows = (await this.value(this.dirOp(lua.LIST_SIGNING_KEYS, [appId]))) as unknown[];
    return rows.map((r) => signingKeyFromRow(rowOf(r)!)).sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  }

  async findSigningKey(kid: string): Promise<SigningKeyRecord | null> {
    const row = rowOf(flatOf(await this.value(this.read(`${this.keys.dir}sk:${kid}`, 'HGETALL'))));
    return row ? signingKeyFromRow(row) : null;
  }

  async listPublishedSigningKeys(now: Millis): Promise<SigningKeyRecord[]> {
    const rows = (await this.value(this.dirOp(lua.LIST_ALL_SIGNING_KEYS, []))) as unknown[];
    return rows.map((r) => signingKeyFromRow(rowOf(r)!))
      .filter((k) => k.state === 'active' || (k.state === 'retiring' && (k.publishUntil ?? 0) > now))
      .sort((a, b) => (a.appId < b.appId ? -1 : a.appId > b.appId ? 1 : a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  }

  async rotateSigningKey(input: {
    appId: string; expectActiveKid: string | null; next: SigningKeyRecord; now: Millis; publishUntil: Millis;
  }): Promise<{ rotated: boolean }> {
    const reply = await this.value(this.dirOp(lua.ROTATE_SIGNING_KEY, [
      input.appId, input.expectActiveKid ?? '', input.now, input.publishUntil, input.next.kid, fields(signingKeyColumns(input.next)),
    ], true));
    return { rotated: Number(reply) === 1 };
  }

  async revokeSigningKey(appId: string, kid: string, now: Millis): Promise<boolean> {
    return Number(await this.value(this.dirOp(lua.REVOKE_SIGNING_KEY, [appId, kid, now], true))) === 1;
  }

  async signingKeysVersion(appId: string): Promise<number> {
    return Number((await this.value(this.read(`${this.keys.dir}app:${appId}`, 'HGET', ['keys_version']))) ?? 0);
  }

  /** The app's id and key version (null: the app is gone), read with the hot queries (S2-13). */
  private appState(appId: string): Promise<unknown> {
    return this.value(this.read(`${this.keys.dir}app:${appId}`, 'HMGET', ['id', 'keys_version']));
  }

  // ── subjects ───────────────────────────────────────────────────────────────────────────────────

  async findSubject(appId: string, subject: string): Promise<Subject | null> {
    const base = this.keys.subject(appId, subject);
    const [reply, app] = await Promise.all([this.value(this.read(`${base}u`, 'HGETALL')), this.appState(appId)]);
    const row = rowOf(flatOf(reply));
    return row && appExists(app) ? subjectFromRow(row) : null;
  }

  async patchSubject(input: { appId: string; subject: string; set: SubjectColumns; now: Millis }): Promise<{
    subject: Subject; previousStatus: SubjectStatus | null;
  }> {
    const { appId, subject, set, now } = input;
    const base = this.keys.subject(appId, subject);
    const columns: Record<string, unknown> = {};
    const cleared: string[] = [];
    const put = (column: string, value: unknown) => (value === null ? cleared.push(column) : (columns[column] = value));
    if (set.claims !== undefined) put('claims', JSON.stringify(set.claims));
    if (set.status !== undefined) put('status', set.status);
    if (set.passwordHash !== undefined) put('password_hash', set.passwordHash);
    if (set.ed25519PublicKey !== undefined) put('ed25519_public_key', set.ed25519PublicKey);
    const created = {
      app_id: appId, subject, claims: JSON.stringify(set.claims ?? {}), status: set.status ?? 'active', password_hash: set.passwordHash ?? null,
      ed25519_public_key: set.ed25519PublicKey ?? null, created_at: now, updated_at: now,
    };
    await this.value({ key: `${this.keys.app(appId)}subjects`, command: 'ZADD', args: ['0', subject], durable: true });
    const [before, flat] = (await this.value(this.subjOp(base, lua.PATCH_SUBJECT, [fields(columns), cleared.join(','), fields(created), now], true))) as [string, unknown[]];
    return { subject: subjectFromRow(rowOf(flat)!), previousStatus: before === '' ? null : (before as SubjectStatus) };
  }

  async deleteSubject(appId: string, subject: string, now: Millis): Promise<boolean> {
    const base = this.keys.subject(appId, subject);
    const deleted = Number(await this.value(this.subjOp(base, lua.DELETE_SUBJECT, [now], true))) === 1;
    // The subject's sessions stay (revoked) until pruned, so it leaves the app's list of subjects only.
    await this.value({ key: `${this.keys.app(appId)}subjects`, command: 'ZREM', args: [subject], durable: true });
    return deleted;
  }

  // ── sessions ───────────────────────────────────────────────────────────────────────────────────

  async issueSession(input: {
    session: Session; newSubjectClaims: Record<string, unknown>; revokeOthers?: string;
  }): Promise<{ issued: true; subject: Subject } | { issued: false; reason: 'subject_disabled' }> {
    const s = input.session;
    const base = this.keys.subject(s.appId, s.subject);
    // The indexes first: a reader that finds one without its session finds nothing (see the class doc).
    const app = this.keys.app(s.appId);
    await Promise.all([
      this.value({ key: this.keys.sessionIndex(s.id), command: 'SET', args: [`${s.appId}\n${base}`], durable: true }),
      this.value({ key: `${app}subjects`, command: 'ZADD', args: ['0', s.subject], durable: true }),
      this.value({ key: `${app}sessions`, command: 'ZADD', args: ['0', `${s.id}\n${base}`], durable: true }),
      s.locator === null ? null : this.value({ key: this.keys.locatorIndex(s.locator), command: 'SET', args: [`${s.appId}\n${base}\n${s.id}`], durable: true }),
    ]);
    const reply = (await this.value(this.subjOp(base, lua.ISSUE_SESSION, [
      s.appId, s.subject, JSON.stringify(input.newSubjectClaims), s.createdAt, s.id, fields(sessionColumns(s)), input.revokeOthers ?? '',
    ], true, false, [`${base}ss`, `${base}s:${s.id}`]))) as [number, unknown[]?];
    if (Number(reply[0]) !== 1) return { issued: false, reason: 'subject_disabled' };
    this.remember(s.id, { appId: s.appId, base });
    return { issued: true, subject: subjectFromRow(rowOf(reply[1])!) };
  }

  private remember(id: string, location: Location): void {
    if (this.locations.size >= LOCATION_CACHE_MAX) this.locations.clear();
    this.locations.set(id, location);
  }

  /** Where a session lives, from the cache or its index; null: no such session. */
  private async locate(id: string): Promise<Location | null> {
    const cached = this.locations.get(id);
    if (cached) return cached;
    const value = await this.value(this.read(this.keys.sessionIndex(id), 'GET'));
    if (typeof value !== 'string') return null;
    const [appId, base] = value.split('\n') as [string, string];
    const location = { appId, base };
    this.remember(id, location);
    return location;
  }

  async findSession(id: string): Promise<FoundSession | null> {
    const location = await this.locate(id);
    return location ? this.readSession(location, id) : null;
  }

  async findSessionByLocator(locator: string): Promise<FoundSession | null> {
    const value = await this.value(this.read(this.keys.locatorIndex(locator), 'GET'));
    if (typeof value !== 'string') return null;
    const [appId, base, id] = value.split('\n') as [string, string, string];
    const found = await this.readSession({ appId, base }, id);
    return found && found.session.locator === locator ? found : null;
  }

  /** The session, its subject's status and its app's key version: two reads on two shards, side by side. */
  private async readSession(location: Location, id: string): Promise<FoundSession | null> {
    const [reply, app] = await Promise.all([
      this.value(this.subjOp(location.base, lua.READ_SESSION, [id], false, true, [`${location.base}s:${id}`])) as Promise<[unknown[], string, string]>,
      this.appState(location.appId),
    ]);
    const row = rowOf(reply[0]);
    if (!row || !appExists(app)) return null;
    const found: FoundSession = {
      session: sessionFromRow(row),
      subjectStatus: reply[1] === '' ? null : (reply[1] as SubjectStatus),
      keysVersion: Number((app as unknown[])[1] ?? 0),
    };
    const pending = row.pend === undefined ? null : Number(row.pend);
    if (pending !== null && pending === found.session.refresh?.generation) {
      (found as FoundSession & { rotation?: 'in_flight' | 'unconfirmed' }).rotation = Number(reply[2]) < Number(row.pdl) ? 'in_flight' : 'unconfirmed';
    }
    return found;
  }

  async listSessions(appId: string, subject: string): Promise<Session[]> {
    const base = this.keys.subject(appId, subject);
    const [rows, app] = await Promise.all([this.value(this.subjOp(base, lua.LIST_SESSIONS, [], false)) as Promise<unknown[]>, this.appState(appId)]);
    if (!appExists(app)) return [];
    return rows.map((r) => sessionFromRow(rowOf(r)!)).sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  async revokeSession(sessionId: string, reason: string, now: Millis): Promise<boolean> {
    const location = await this.locate(sessionId);
    if (!location) return false;
    const nonce = randomBytes(8).toString('hex');
    return Number(await this.value(this.subjOp(location.base, lua.REVOKE_SESSION, [sessionId, reason, now, nonce], true, true, [`${location.base}s:${sessionId}`]))) === 1;
  }

  async revokeSubjectSessions(appId: string, subject: string, reason: string, now: Millis): Promise<number> {
    const base = this.keys.subject(appId, subject);
    return Number(await this.value(this.subjOp(base, lua.REVOKE_SUBJECT_SESSIONS, [reason, now], true)));
  }

  async touchSession(input: TouchInput): Promise<boolean> {
    const location = await this.locate(input.sessionId);
    if (!location) return false;
    return Number(await this.value(this.subjOp(location.base, lua.TOUCH_SESSION, [
      input.sessionId, input.now, opt(input.lastIp), opt(input.lastUserAgent), input.horizonAt,
    ], true, true, [`${location.base}s:${input.sessionId}`]))) === 1;
  }

  // ── the rotation ───────────────────────────────────────────────────────────────────────────────

  private rotationArgs(input: RotateInput, rid: string): unknown[] {
    const n = input.next;
    return [
      input.expectGeneration, n.generation, n.issuedAt, n.notBefore, n.expiresAt, n.successorSealed ? n.successorSealed.toString('base64') : '',
      input.now, opt(input.lastIp), opt(input.lastUserAgent), input.horizonAt, opt(input.bindJkt ?? null), rid, this.options.waitMs,
    ];
  }

  /**
   * One script (the compare-and-set on the generation) and, on the same connection, WAIT: answered
   * only once `minReplicas` replicas have it. Rotations of one turn bound for one master share a
   * pipeline and one WAIT (group commit). A rotation not confirmed in time stays pending on its session
   * (see `readSession`) and is StoreUnavailableError (503) to its caller.
   */
  async rotateSession(input: RotateInput): Promise<{ rotated: boolean }> {
    const location = await this.locate(input.sessionId);
    if (!location) return { rotated: false };
    const rid = randomBytes(8).toString('hex');
    const rotated = Number(await this.value(this.subjOp(location.base, lua.ROTATE_SESSION, [input.sessionId, ...this.rotationArgs(input, rid)], true, true, [`${location.base}s:${input.sessionId}`]))) === 1;
    if (rotated) this.clearPending(location, input.sessionId, input.next.generation);
    return { rotated };
  }

  /** Confirmed and answered: no longer pending (not waited for: a lost clear only leaves the parent redeemable a while longer). */
  private clearPending(location: Location, sessionId: string, generation: number): void {
    this.value(this.subjOp(location.base, lua.CLEAR_PENDING, [sessionId, generation], false, true, [`${location.base}s:${sessionId}`])).catch(() => {});
  }

  /**
   * Makes the live generation's pending rotation durable before a retry of its parent is answered
   * (contract: FoundSession.rotation): a write on its key, then WAIT. While the rotation's own WAIT may
   * still be running, this waits no longer than it does (so it never confirms what its caller was told
   * failed); once that WAIT gave up, up to `waitMs`.
   */
  async confirmRotation(sessionId: string, generation: number): Promise<void> {
    const location = await this.locate(sessionId);
    if (!location) throw new StoreUnavailableError(new Error('the session is gone'));
    const started = Date.now();
    const [row, , serverNow] = (await this.value(this.subjOp(location.base, lua.READ_SESSION, [sessionId], false, true, [`${location.base}s:${sessionId}`]))) as [unknown[], string, string];
    const pend = rowOf(row)?.pend;
    if (pend === undefined || Number(pend) !== generation) return;
    const remaining = Number(rowOf(row)!.pdl) - Number(serverNow) - (Date.now() - started) - 2;
    const op: Op = {
      ...this.subjOp(location.base, lua.TOUCH_PENDING, [sessionId, generation], true, true, [`${location.base}s:${sessionId}`]), waitMs: remaining > 0 ? remaining : this.options.waitMs,
    };
    const touched = (await this.value(op)) as [number];
    if (Number(touched[0]) === 1) this.clearPending(location, sessionId, generation);
  }

  // ── pre-upgrade refresh records ────────────────────────────────────────────────────────────────

  async findLegacyRefresh(id: string): Promise<FoundLegacyRefresh | null> {
    const value = await this.value(this.read(this.keys.legacyIndex(id), 'GET'));
    if (typeof value !== 'string') return null;
    const [appId, base, sessionId] = value.split('\n') as [string, string, string];
    const [reply, app] = await Promise.all([
      this.value(this.subjOp(base, lua.READ_LEGACY, [id, sessionId], false)) as Promise<[unknown[], unknown[], string, string]>,
      this.appState(appId),
    ]);
    const record = rowOf(reply[0]);
    const session = rowOf(reply[1]);
    if (!record || !session || !appExists(app)) return null;
    return {
      record: refreshFromRow(record), session: sessionFromRow(session),
      subjectStatus: reply[2] === '' ? null : (reply[2] as SubjectStatus), keysVersion: Number((app as unknown[])[1] ?? 0),
    };
  }

  async findLiveLegacyRefresh(sessionId: string): Promise<RefreshRecord | null> {
    const location = await this.locate(sessionId);
    if (!location) return null;
    const [generation, rows] = (await this.value(this.subjOp(location.base, lua.LEGACY_OF_SESSION, [sessionId], false))) as [string, unknown[]];
    if (Number(generation) !== 0) return null;
    const live = rows.map((r) => refreshFromRow(rowOf(r)!)).filter((r) => r.consumedAt === null).sort((a, b) => b.issuedAt - a.issuedAt);
    return live[0] ?? null;
  }

  async upgradeLegacy(input: { legacyId: string; locator: string | null } & RotateInput): Promise<{ rotated: boolean }> {
    const location = await this.locate(input.sessionId);
    if (!location) return { rotated: false };
    if (input.locator !== null) {
      await this.value({ key: this.keys.locatorIndex(input.locator), command: 'SET', args: [`${location.appId}\n${location.base}\n${input.sessionId}`], durable: true });
    }
    const rid = randomBytes(8).toString('hex');
    const rotated = Number(await this.value(this.subjOp(location.base, lua.UPGRADE_LEGACY, [
      input.sessionId, input.legacyId, UPGRADED, ...this.rotationArgs(input, rid), opt(input.locator),
    ], true, true))) === 1;
    if (rotated) this.clearPending(location, input.sessionId, input.next.generation);
    return { rotated };
  }

  // ── DPoP replay cache, rate limits ─────────────────────────────────────────────────────────────

  async useDpopProof(input: { key: string; expiresAt: Millis }): Promise<boolean> {
    // Expires by itself too (ten minutes past the later of its expiry and now), should pruning not reach it.
    const pxat = Math.max(input.expiresAt, Date.now()) + 600_000;
    const reply = await this.value({ key: this.keys.dpop(input.key), command: 'SET', args: [String(input.expiresAt), 'NX', 'PXAT', String(pxat)], durable: true });
    return reply === 'OK';
  }

  async addRateHits(input: { windowStart: Millis; hits: { key: string; count: number }[] }): Promise<Map<string, number>> {
    const original = new Map<string, string>();
    const args: string[] = [this.keys.rate, String(input.windowStart)];
    for (const { key, count } of input.hits) {
      const stored = storedRateKey(key);
      original.set(stored, key);
      args.push(stored, String(count));
    }
    const flat = (await this.value({ key: `${this.keys.rate}ws`, script: lua.ADD_RATE_HITS, args })) as unknown[];
    const rows: Row[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) rows.push({ key: flat[i], count: flat[i + 1] });
    return rateTotals(rows, original);
  }

  // ── pruning ────────────────────────────────────────────────────────────────────────────────────

  /**
   * Walks every master's keys (SCAN) and deletes what nothing can use any more, each session by a
   * script on its own slot: sessions past their horizon or revoked beyond the retention (with their
   * pre-upgrade records), sessions and subjects of deleted apps, expired pre-upgrade records, old seals,
   * old rate-limit windows, spent DPoP proofs, and index entries left without their record by a crash
   * between the two writes (once their session id is an hour old). Idempotent: instances pruning at
   * once only repeat each other's deletions.
   */
  async prune(now: Millis, options: { revokedRetention: number }): Promise<{ refreshTokens: number; sessions: number }> {
    await this.connected();
    const cutoff = now - options.revokedRetention;
    const sealCutoff = now - MAX_GRACE_MS;
    const p = this.keys.prefix;
    let sessions = 0;
    let refreshTokens = 0;
    const appGone = new Map<string, boolean>();
    const isGone = async (appId: string): Promise<boolean> => {
      let gone = appGone.get(appId);
      if (gone === undefined) {
        gone = !appExists(await this.appState(appId));
        appGone.set(appId, gone);
      }
      return gone;
    };
    for (const key of await this.scan(`${p}:{${p}:*}:s:*`)) {
      const { base, id } = splitKey(key, ':s:');
      const appId = await this.value(this.read(key, 'HGET', ['app_id']));
      if (typeof appId !== 'string') continue;
      const gone = await isGone(appId);
      const deleted = Number(await this.value(this.subjOp(base, lua.PRUNE_SESSION, [id, cutoff, sealCutoff, gone ? '1' : '0'], false)));
      if (deleted === 1) {
        sessions += 1;
        await this.value({ key: `${this.keys.app(appId)}sessions`, command: 'ZREM', args: [`${id}\n${base}`] });
      }
    }
    for (const key of await this.scan(`${p}:{${p}:*}:r:*`)) {
      const { base, id } = splitKey(key, ':r:');
      refreshTokens += Number(await this.value(this.subjOp(base, lua.PRUNE_RECORD, [id, now, sealCutoff], false)));
    }
    for (const key of await this.scan(`${p}:{${p}:*}:u`)) {
      const appId = await this.value(this.read(key, 'HGET', ['app_id']));
      if (typeof appId === 'string' && (await isGone(appId))) {
        await this.value(this.subjOp(key.slice(0, -1), lua.PRUNE_SUBJECT, [], false));
      }
    }
    for (const [appId, gone] of appGone) {
      if (gone) await this.value({ key: `${this.keys.app(appId)}subjects`, command: 'DEL', args: [`${this.keys.app(appId)}sessions`] });
    }
    await this.value({ key: `${this.keys.rate}ws`, script: lua.PRUNE_RATE, args: [`${this.keys.rate}w:`, String(now - RATE_WINDOWS_KEPT_MS)] });
    for (const key of await this.scan(`${p}:dp:*`)) {
      const expires = await this.value(this.read(key, 'GET'));
      if (typeof expires === 'string' && Number(expires) <= now) await this.value({ key, command: 'DEL', args: [] });
    }
    // Index entries whose record never came (a crash, or a refused issuance, between the two writes).
    const hourAgo = Date.now() - 3_600_000;
    for (const [pattern, idOf] of [
      [`${p}:sid:*`, (key: string) => key.slice(`${p}:sid:`.length)],
      [`${p}:loc:*`, null],
      [`${p}:lg:*`, null],
    ] as const) {
      for (const key of await this.scan(pattern)) {
        const value = await this.value(this.read(key, 'GET'));
        if (typeof value !== 'string') continue;
        const [, base, third] = value.split('\n') as [string, string, string?];
        const sessionId = idOf ? idOf(key) : third!;
        let minted: number;
        try {
          minted = decodeTime(sessionId);
        } catch {
          minted = 0;
        }
        if (minted > hourAgo) continue;
        const exists = Number(await this.value(this.read(`${base}s:${sessionId}`, 'EXISTS')));
        if (exists === 0) await this.value({ key, command: 'DEL', args: [] });
      }
    }
    return { refreshTokens, sessions };
  }

  // ── listings, security events, activity samples ───────────────────────────────────────────────

  async listSubjects(appId: string, page: { after: string | null; limit: number; now: Millis }): Promise<SubjectListing[]> {
    const limit = clampLimit(page.limit);
    const out: SubjectListing[] = [];
    let after = page.after;
    if (!appExists(await this.appState(appId))) return [];
    while (out.length < limit) {
      const names = (await this.value(this.read(`${this.keys.app(appId)}subjects`, 'ZRANGEBYLEX', [
        after === null ? '-' : `(${after}`, '+', 'LIMIT', '0', String(limit - out.length),
      ]))) as string[];
      if (names.length === 0) break;
      const listed = await Promise.all(names.map(async (subject) => {
        const base = this.keys.subject(appId, subject);
        const [flat, live] = (await this.value(this.subjOp(base, lua.SUBJECT_LISTING, [page.now], false))) as [unknown[], number];
        const row = rowOf(flat);
        // An index entry whose subject never came (or was deleted) lists nothing.
        return row ? { subject: subjectFromRow(row), liveSessions: Number(live) } : null;
      }));
      for (const entry of listed) if (entry) out.push(entry);
      after = names[names.length - 1]!;
    }
    return out;
  }

  async listAppSessions(appId: string, page: { subject: string | null; before: string | null; limit: number }): Promise<Session[]> {
    const limit = clampLimit(page.limit);
    if (!appExists(await this.appState(appId))) return [];
    if (page.subject !== null) {
      const all = await this.listSessions(appId, page.subject);
      return all.filter((s) => page.before === null || s.id < page.before).slice(0, limit);
    }
    const out: Session[] = [];
    let before = page.before;
    while (out.length < limit) {
      const members = (await this.value(this.read(`${this.keys.app(appId)}sessions`, 'ZREVRANGEBYLEX', [
        before === null ? '+' : `(${before}`, '-', 'LIMIT', '0', String(limit - out.length),
      ]))) as string[];
      if (members.length === 0) break;
      const rows = await Promise.all(members.map((member) => {
        const [id, base] = member.split('\n') as [string, string];
        return this.value(this.read(`${base}s:${id}`, 'HGETALL'));
      }));
      for (const flat of rows) {
        const row = rowOf(flatOf(flat));
        if (row) out.push(sessionFromRow(row));
      }
      before = members[members.length - 1]!.split('\n')[0]!;
    }
    return out;
  }

  async appendEvent(event: NewSecurityEventRecord): Promise<void> {
    const body = JSON.stringify({ event: event.event, appId: event.appId, fields: event.fields });
    await this.value({ key: `${this.keys.events}seq`, script: lua.APPEND_EVENT, args: [this.keys.events, String(event.at), body], durable: true });
  }

  async listEvents(query: { afterId: number | null; sinceAt: Millis | null; limit: number }): Promise<SecurityEventRecord[]> {
    const members = (await this.value({
      key: `${this.keys.events}seq`, script: lua.LIST_EVENTS, resendable: true,
      args: [this.keys.events, query.afterId === null ? '' : String(query.afterId), query.sinceAt === null ? '' : String(query.sinceAt), String(clampLimit(query.limit))],
    })) as string[];
    const events = members.map((member) => {
      const first = member.indexOf('\n');
      const second = member.indexOf('\n', first + 1);
      const body = JSON.parse(member.slice(second + 1)) as { event: string; appId: string | null; fields: SecurityEventRecord['fields'] };
      return { id: Number(member.slice(0, first)), at: Number(member.slice(first + 1, second)), event: body.event, appId: body.appId ?? null, fields: body.fields ?? {} };
    });
    return query.afterId === null && query.sinceAt === null ? events.reverse() : events;
  }

  async recordActivity(sample: ActivitySample): Promise<void> {
    await this.value({
      key: `${this.keys.activity}byat`, script: lua.RECORD_ACTIVITY,
      args: [this.keys.activity, String(sample.at), sample.instance, JSON.stringify(sample.data)],
    });
  }

  async listActivity(since: Millis): Promise<ActivitySample[]> {
    const flat = (await this.value({ key: `${this.keys.activity}byat`, script: lua.LIST_ACTIVITY, args: [this.keys.activity, String(since)], resendable: true })) as string[];
    const out: ActivitySample[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = flat[i]!;
      const cut = field.indexOf('\n');
      let data: Record<string, unknown> = {};
      try {
        const parsed = JSON.parse(flat[i + 1]!) as unknown;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) data = parsed as Record<string, unknown>;
      } catch { /* a sample that is not JSON reads as empty */ }
      out.push({ at: Number(field.slice(0, cut)), instance: field.slice(cut + 1), data });
    }
    return out;
  }

  async pruneActivity(input: { eventsBefore: Millis; samplesBefore: Millis }): Promise<{ events: number; samples: number }> {
    const [events, samples] = await Promise.all([
      this.value({ key: `${this.keys.events}seq`, script: lua.PRUNE_EVENTS, args: [this.keys.events, String(input.eventsBefore)] }),
      this.value({ key: `${this.keys.activity}byat`, script: lua.PRUNE_ACTIVITY, args: [this.keys.activity, String(input.samplesBefore)] }),
    ]);
    return { events: Number(events), samples: Number(samples) };
  }

  /** Every key matching `pattern` on every master. */
  private async scan(pattern: string): Promise<string[]> {
    const keys: string[] = [];
    for (const node of this.cluster.nodes('master')) {
      let cursor = '0';
      do {
        const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000).catch((err: unknown) => {
          throw new StoreUnavailableError(err);
        });
        cursor = next;
        keys.push(...found);
      } while (cursor !== '0');
    }
    return keys;
  }
}

function flatOf(reply: unknown): unknown[] {
  return Array.isArray(reply) ? reply : [];
}

function appExists(reply: unknown): boolean {
  return Array.isArray(reply) && reply[0] !== null && reply[0] !== undefined;
}

function splitKey(key: string, marker: string): { base: string; id: string } {
  const at = key.indexOf(marker, key.indexOf('}'));
  return { base: key.slice(0, at + 1), id: key.slice(at + marker.length) };
}

function appColumns(app: App): Record<string, unknown> {
  return {
    id: app.id, name: app.name, profile: app.profile, public: app.public, policy: JSON.stringify(app.policy), description: app.description,
    created_at: app.createdAt, updated_at: app.updatedAt,
  };
}

function appKeyColumns(k: AppKeyRecord): Record<string, unknown> {
  return { id: k.id, app_id: k.appId, secret_hash: k.secretHash, created_at: k.createdAt, revoked_at: k.revokedAt };
}

function signingKeyColumns(k: SigningKeyRecord): Record<string, unknown> {
  return {
    kid: k.kid, app_id: k.appId, alg: k.alg, state: k.state, public_jwk: k.publicJwk ? JSON.stringify(k.publicJwk) : null,
    private_sealed: k.privateSealed, created_at: k.createdAt, retired_at: k.retiredAt, publish_until: k.publishUntil, revoked_at: k.revokedAt,
  };
}
