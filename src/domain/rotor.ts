import { isJwkThumbprint } from '../crypto/dpop.js';
import type { MasterKey } from '../crypto/master_key.js';
import type { ActivitySample, Store, SubjectListing } from './store.js';
import { Apps } from './apps.js';
import { callerClient, optionalText, validateClaims, validateSubject } from './claims.js';
import type { Clock } from './clock.js';
import {
  Engine, type AccessCheck, type CheckAccessOptions, type ClientContext, type Introspection, type Issued, type LiveRefresh,
  type RefreshOptions, type RenewAccessOptions, type VerifiedAccess, type VerifiedJwt, type VerifyJwtOptions,
} from './engine.js';
import { SecurityEventLog } from './event_log.js';
import { RotorError } from './errors.js';
import { silentObserver, type Observer } from './events.js';
import type { DialectDomain, LoginRule } from './dialect.js';
import type { FormatRegistry } from './format_registry.js';
import { isUsableForVerification, Keyring } from './keyring.js';
import { Profiles } from './profiles.js';
import { Subjects } from './subjects.js';
import type { App, Session } from './types.js';

export interface RotorOptions {
  store: Store;
  masterKey: MasterKey;
  clock: Clock;
  issuer: string;
  observer?: Observer;
  /** The dialects served besides native, from the composition root (src/dialects/index.ts `dialectDomains()`): the domain imports no dialect. */
  dialects: readonly DialectDomain[];
}

export type { ActivitySample };

/** Where the console's activity samples are kept (every instance writes its own). */
export type ActivityLog = { recordActivity(sample: ActivitySample): Promise<void>; listActivity(since: number): Promise<ActivitySample[]> };

/** A shared rate-limit counter, where the store keeps one across instances. */
export type RateCounter = Pick<Required<Store>, 'addRateHits'>;

/**
 * The composition of the domain: what every API (native, OAuth, admin, dialects, CLI) calls. Callers
 * use its operations; its store, keyring and engine are its own.
 */
export class Rotor {
  readonly clock: Clock;
  readonly issuer: string;
  readonly formats: FormatRegistry;
  readonly apps: Apps;
  readonly subjects: Subjects;
  readonly observer: Observer;
  /** The security events every instance records (SPEC §4.3 `GET /admin/events`). */
  readonly events: SecurityEventLog;
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #engine: Engine;

  constructor(options: RotorOptions) {
    this.#store = options.store;
    this.clock = options.clock;
    this.issuer = options.issuer;
    this.events = new SecurityEventLog(options.store, options.clock);
    this.observer = this.events.observing(options.observer ?? silentObserver);
    // The profiles (native and the injected dialects) are also the engine's token-format registry.
    const profiles = new Profiles(options.dialects);
    this.formats = profiles;
    this.#keyring = new Keyring(options.store, options.masterKey, options.clock, profiles);
    this.apps = new Apps(options.store, this.#keyring, options.clock, this.observer, profiles);
    this.subjects = new Subjects({ store: options.store, clock: options.clock, observer: this.observer, formats: profiles });
    this.#engine = new Engine({
      store: options.store, keyring: this.#keyring, masterKey: options.masterKey, clock: options.clock,
      issuer: options.issuer, observer: this.observer, apps: this.apps, formats: profiles,
    });
  }

  /** Test-only: the parts behind the operations. Nothing under src/ uses it. */
  get internals(): { store: Store; keyring: Keyring; engine: Engine } {
    return { store: this.#store, keyring: this.#keyring, engine: this.#engine };
  }

  // ── the store's life ──────────────────────────────────────────────────────────────────────────

  /** `sqlite`, `postgres`, `redis`… as logs and the CLI name it. */
  get storeKind(): string {
    return this.#store.kind;
  }

  /** Readiness: resolves while the store answers. */
  ping(): Promise<void> {
    return this.#store.ping();
  }

  close(): Promise<void> {
    return this.#store.close();
  }

  /** At start-up: every published key still decrypts and verifies; the number checked. */
  checkPublishedKeys(): Promise<number> {
    return this.#keyring.checkPublishedKeys();
  }

  /** The shared rate-limit counter, or null where the store keeps none (each instance counts alone). */
  rateCounter(): RateCounter | null {
    const store = this.#store;
    return store.addRateHits ? { addRateHits: store.addRateHits.bind(store) } : null;
  }

  /** The store's activity samples (the console's charts). */
  get activity(): ActivityLog {
    const store = this.#store;
    return { recordActivity: (sample) => store.recordActivity(sample), listActivity: (since) => store.listActivity(since) };
  }

  // ── tokens ────────────────────────────────────────────────────────────────────────────────────

  /** Renews a session from its refresh token (see Engine.refresh for what `options` restricts). */
  refresh(token: unknown, options: RefreshOptions = {}): Promise<Issued> {
    return this.#engine.refresh(token, options);
  }

  /** Whether a token is a live access token: `{ ok: false, reason }` for every expected refusal. */
  checkAccess(token: unknown, options: CheckAccessOptions = {}): Promise<AccessCheck> {
    return this.#engine.checkAccess(token, options);
  }

  /** A genuine JWT of Rotor's (signature, time claims, issuer), whatever its session; null otherwise. */
  verifyJwt(token: string, options: VerifyJwtOptions): Promise<VerifiedJwt | null> {
    return this.#engine.verifyJwt(token, options);
  }

  /** A new access token in a verified access token's session, its refresh chain untouched (Verifik). */
  renewAccess(access: VerifiedAccess, options: RenewAccessOptions = {}): Promise<Issued> {
    return this.#engine.renewAccess(access, options);
  }

  /**
   * A new session for the subject of a verified access token, with its claims and audience, revoking
   * every other session of the subject in the same step (`reason`, e.g. Verifik's renew-and-revoke).
   */
  replaceSessions(access: VerifiedAccess, input: { client?: ClientContext; reason: string }): Promise<Issued> {
    const { session } = access;
    return this.#engine.issue(access.app, {
      subject: session.subject, claims: session.claims, audience: session.audience, client: input.client, revokeOthers: input.reason,
    });
  }

  /** RFC 7009: revokes the session of a valid token of `client` (of any app without one); false otherwise. */
  revokeToken(token: unknown, client?: App): Promise<{ revoked: boolean }> {
    return this.#engine.revokeToken(token, client);
  }

  /** Ends the session of a verified access token (a dialect's logout). */
  logout(access: VerifiedAccess): Promise<boolean> {
    return this.#engine.revokeSession({ sessionId: access.session.id, reason: 'logout', appId: access.app.id });
  }

  /** RFC 7662: what a token of `client` is, if it is alive. */
  introspect(token: unknown, client: App): Promise<Introspection> {
    return this.#engine.introspect(token, client);
  }

  /** The app a genuine token belongs to, consuming nothing (SPEC §2.11 origin checks); null otherwise. */
  appOfToken(token: unknown): Promise<App | null> {
    return this.#engine.appOfToken(token);
  }

  /**
   * Issues a session for a subject, copying the subject's claims under the caller's. `client` is the
   * ip and user agent to record, as the caller (who holds the app key) names them: validated here.
   */
  async issueSession(app: App, input: {
    subject: unknown; claims?: unknown; audience?: unknown; client?: { ip?: unknown; userAgent?: unknown };
    /** RFC 7638 thumbprint of the client's DPoP key: binds the session (SPEC §4.1). */
    dpopJkt?: unknown;
  }): Promise<Issued> {
    const subject = validateSubject(input.subject);
    const claims = validateClaims(input.claims, this.formats.formatFor(app.profile).reservedClaims);
    const audience = optionalText(input.audience, 'audience', 256);
    const client: ClientContext = callerClient(input.client?.ip, input.client?.userAgent);
    const existing = await this.#store.findSubject(app.id, subject);
    if (existing && existing.status !== 'active') throw new RotorError('subject_disabled', 'the subject is disabled');
    if (input.dpopJkt !== undefined && input.dpopJkt !== null && !isJwkThumbprint(input.dpopJkt)) {
      throw new RotorError('invalid_request', 'dpopJkt must be the RFC 7638 SHA-256 thumbprint of the client\'s public key (43 base64url characters)');
    }
    const dpopJkt = (input.dpopJkt as string | null | undefined) ?? null;
    return this.#engine.issue(app, { subject, claims: { ...existing?.claims, ...claims }, audience, client, dpopJkt });
  }

  async login(app: App, input: { username: unknown; password: unknown; client?: { ip?: unknown; userAgent?: unknown } }): Promise<Issued> {
    const subject = await this.subjects.checkPassword(app, input.username, input.password);
    const client: ClientContext = callerClient(input.client?.ip, input.client?.userAgent);
    return this.#engine.issue(app, { subject: subject.subject, claims: subject.claims, client });
  }

  /**
   * A password login that names no app (Abitmedia's root): a session in the newest of the username's
   * `maxApps` most recent registrations among `apps` whose password matches (Subjects.checkPasswordAmong).
   */
  async loginAmong(apps: readonly App[], input: { username: unknown; password: unknown; client?: { ip?: unknown; userAgent?: unknown }; maxApps: number }): Promise<Issued> {
    const { app, subject } = await this.subjects.checkPasswordAmong(apps, input.username, input.password, input.maxApps);
    const client: ClientContext = callerClient(input.client?.ip, input.client?.userAgent);
    return this.#engine.issue(app, { subject: subject.subject, claims: subject.claims, client });
  }

  /** FIB's login: the subject proves itself with an Ed25519 signature (SPEC §4.4); `client` as the request shows it. */
  /** A login by the dialect's own proof rule (FIB's Ed25519 signature over a BLAKE2b digest): a session for the subject. */
  async loginWithProof<P>(app: App, input: { subject: unknown; rule: LoginRule<P>; proof: P; client?: ClientContext }): Promise<Issued> {
    const subject = await this.subjects.checkLogin(app, input.subject, input.rule, input.proof);
    return this.#engine.issue(app, { subject: subject.subject, claims: subject.claims, client: input.client });
  }

  async listSessions(app: App, subject: unknown): Promise<Session[]> {
    return this.#store.listSessions(app.id, validateSubject(subject));
  }

  /** A subject's live sessions, each with its live refresh record (JWTPlus get-session). */
  async livePairs(app: App, subject: unknown): Promise<{ session: Session; refresh: LiveRefresh }[]> {
    const sessions = (await this.listSessions(app, subject)).filter((s) => s.revokedAt === null);
    const pairs: { session: Session; refresh: LiveRefresh }[] = [];
    for (const session of sessions) {
      const refresh = await this.#engine.liveRefreshOf(app, session);
      if (refresh) pairs.push({ session, refresh });
    }
    return pairs;
  }

  async revokeSessionOf(app: App, sessionId: unknown): Promise<void> {
    const found = typeof sessionId === 'string' && sessionId.length <= 64 ? await this.#store.findSession(sessionId) : null;
    if (!found || found.session.appId !== app.id) throw new RotorError('not_found', 'no session of this app has that id');
    await this.#engine.revokeSession({ sessionId: found.session.id, reason: 'revoked', appId: app.id });
  }

  async revokeSubjectSessions(app: App, subject: unknown): Promise<number> {
    const count = await this.#store.revokeSubjectSessions(app.id, validateSubject(subject), 'revoked', this.clock.now());
    if (count > 0) this.observer.event('session_revoked', { appId: app.id, count, reason: 'revoked' });
    return count;
  }

  /** JWKS of one app, or of every app: active and still-published retiring asymmetric keys only. */
  async jwks(app?: App): Promise<{ keys: Record<string, unknown>[] }> {
    const now = this.clock.now();
    const records = app ? await this.#store.listSigningKeys(app.id) : await this.#store.listPublishedSigningKeys(now);
    const keys = records
      .filter((k) => k.publicJwk !== null && isUsableForVerification(k, now))
      .map((k) => ({ ...(k.publicJwk as Record<string, unknown>) }));
    return { keys };
  }

  /**
   * Deletes what nothing can use any more; run periodically by `serve`. Security events are kept as long
   * as revoked sessions (ROTOR_REVOKED_RETENTION), activity samples for ACTIVITY_RETENTION_MS.
   */
  async prune(revokedRetentionSeconds = 7 * 86400) {
    const now = this.clock.now();
    const pruned = await this.#store.prune(now, { revokedRetention: revokedRetentionSeconds * 1000 });
    await this.#store.pruneActivity({ eventsBefore: now - revokedRetentionSeconds * 1000, samplesBefore: now - ACTIVITY_RETENTION_MS });
    return pruned;
  }

  // ── listings for the admin API and the console (SPEC §4.3) ────────────────────────────────────

  /** An app's subjects in byte order of their id, a page at a time; `next` continues after the last one. */
  async subjectsPage(app: App, page: { cursor?: unknown; limit?: unknown }): Promise<{ subjects: SubjectListing[]; next: string | null }> {
    const limit = pageLimit(page.limit);
    const after = page.cursor === undefined || page.cursor === '' ? null : decodeCursor(page.cursor);
    const subjects = await this.#store.listSubjects(app.id, { after, limit: limit + 1, now: this.clock.now() });
    const more = subjects.length > limit;
    const shown = subjects.slice(0, limit);
    return { subjects: shown, next: more ? encodeCursor(shown.at(-1)!.subject.subject) : null };
  }

  /** An app's sessions (of one subject when given), newest first, a page at a time. */
  async sessionsPage(app: App, page: { subject?: unknown; cursor?: unknown; limit?: unknown }): Promise<{ sessions: Session[]; next: string | null }> {
    const limit = pageLimit(page.limit);
    const subject = page.subject === undefined || page.subject === '' ? null : validateSubject(page.subject);
    const before = page.cursor === undefined || page.cursor === '' ? null : decodeCursor(page.cursor);
    const sessions = await this.#store.listAppSessions(app.id, { subject, before, limit: limit + 1 });
    const more = sessions.length > limit;
    const shown = sessions.slice(0, limit);
    return { sessions: shown, next: more ? encodeCursor(shown.at(-1)!.id) : null };
  }

  /**
   * Whether a session can still renew, as an operator reads it: `revoked` (and why: the session's
   * `revokeReason`), `expired` (absolute lifetime, idle timeout, or its last token's expiry passed), or `live`.
   */
  sessionState(app: App, session: Session): 'live' | 'revoked' | 'expired' {
    const now = this.clock.now();
    if (session.revokedAt !== null) return 'revoked';
    if (session.expiresAt !== null && session.expiresAt <= now) return 'expired';
    const idle = app.policy.sessionIdleTimeout;
    if (idle !== null && idle !== undefined && session.lastRenewedAt + idle * 1000 <= now) return 'expired';
    if (session.horizonAt <= now) return 'expired';
    return 'live';
  }

}

/** How long activity samples (the console's charts) are kept: the hour shown, and one more. */
export const ACTIVITY_RETENTION_MS = 2 * 3600_000;

const DEFAULT_PAGE = 50;
const MAX_PAGE = 500;

function pageLimit(value: unknown): number {
  if (value === undefined || value === '') return DEFAULT_PAGE;
  const n = typeof value === 'string' && /^\d{1,4}$/.test(value) ? Number(value) : typeof value === 'number' ? value : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw new RotorError('invalid_request', `limit must be a whole number from 1 to ${MAX_PAGE}`);
  return n;
}

/** Page cursors are opaque to callers: base64url of where the last page ended. */
const encodeCursor = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

function decodeCursor(value: unknown): string {
  if (typeof value !== 'string' || value.length > 400 || !/^[A-Za-z0-9_-]+$/.test(value)) {
    throw new RotorError('invalid_request', 'cursor must be the `next` value of a previous page');
  }
  return Buffer.from(value, 'base64url').toString('utf8');
}

