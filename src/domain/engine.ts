import { decodeJwt, headerKid, MAX_TOKEN_LENGTH, numericDate, signJwt, verifySignature, type DecodedJwt } from '../crypto/jwt.js';
import type { MasterKey } from '../crypto/master_key.js';
import { isOpaqueRefreshToken, newOpaqueRefreshToken, opaqueRefreshId } from '../crypto/secrets.js';
import type { SigningKey } from '../crypto/signing_key.js';
import type { Store } from '../store/contract.js';
import { recordableClient } from './claims.js';
import { toSeconds, type Clock } from './clock.js';
import { invalidAccessToken, invalidRefreshToken, RotorError, type RefreshRefusal } from './errors.js';
import type { Observer } from './events.js';
import { formatFor, type JwtParts, type MintContext, type TokenFormat } from './formats/index.js';
import { newId } from './ids.js';
import type { Keyring } from './keyring.js';
import type { App, JsonObject, Millis, RefreshRecord, Session, SubjectStatus } from './types.js';

/** Clock leeway for `nbf` (skew between instances). `exp` has none: a token is valid while now < exp. */
export const NBF_LEEWAY_SECONDS = 30;

/**
 * The longest token Rotor issues (S2-09): verification refuses anything over MAX_TOKEN_LENGTH, and a
 * renewal's token may be a few characters longer than the issuance's (a later `exp`, another key's
 * signature), so issuance keeps this margin below it and every token it hands out stays usable.
 */
export const MAX_ISSUED_TOKEN_LENGTH = MAX_TOKEN_LENGTH - 128;

/** One issuance or renewal, before any API shapes it. */
export interface Issued {
  app: App;
  session: Session;
  accessToken: string;
  accessPayload: JsonObject;
  /** Seconds until the access token expires. */
  expiresIn: number;
  refreshToken: string | null;
  refreshExpiresIn: number | null;
  refreshPayload: JsonObject | null;
  key: SigningKey;
}

export interface VerifiedAccess {
  app: App;
  session: Session;
  payload: JsonObject;
  header: JsonObject;
  /** The app's signing-key version read with the session (S2-13). */
  keysVersion: number;
}

/** A refresh record as the store found it, with what the hot query read beside it. */
type FoundRefresh = { record: RefreshRecord; session: Session; subjectStatus: SubjectStatus | null; keysVersion: number };

/** A presented refresh token's stored id, and the key that signed it (JWT refresh tokens). */
type RefreshRef = { id: string; kid: string | null };

export interface Introspection {
  active: boolean;
  tokenType?: 'access_token' | 'refresh_token';
  sub?: string;
  sid?: string;
  exp?: number;
  iat?: number;
  claims?: JsonObject;
}

export interface RefreshOptions {
  /** The authenticated client (OAuth) or the app a dialect path names: other apps' tokens are unknown. */
  client?: App;
  /** Only tokens of apps of this profile (dialect endpoints). */
  profile?: App['profile'];
  /** The token must belong to this session (floLIVE pairs an access token with its refresh token). */
  expectSessionId?: string;
  context?: ClientContext;
  /**
   * The caller proved `client` with its app key (or OAuth client authentication). A confidential app's
   * refresh tokens are redeemed only so, on every endpoint (SPEC §1, S2-04).
   */
  clientAuthenticated?: boolean;
}

export interface ClientContext {
  ip?: string | null;
  userAgent?: string | null;
}

interface EngineDeps {
  store: Store;
  keyring: Keyring;
  masterKey: MasterKey;
  clock: Clock;
  issuer: string;
  observer: Observer;
  apps: { byId(id: string): Promise<App | null> };
}

/**
 * The rotation engine: issues sessions, renews them, detects reuse, verifies and revokes tokens.
 * It knows the storage contract and the token formats, nothing of HTTP or SQL.
 */
export class Engine {
  constructor(private readonly deps: EngineDeps) {}

  private nowMs(): Millis {
    return this.deps.clock.now();
  }

  // ── issuance ───────────────────────────────────────────────────────────────────────────────────

  async issue(app: App, input: {
    subject: string; claims: JsonObject; audience?: string | null; client?: ClientContext;
    /** Revoke the subject's other sessions in the same step. */
    revokeOthers?: string;
    accessTtl?: number;
  }): Promise<Issued> {
    const now = this.nowMs();
    const { policy } = app;
    const format = formatFor(app.profile);
    const { ip, userAgent } = recordableClient(input.client);
    const expiresAt = policy.sessionMaxAge === null ? null : now + policy.sessionMaxAge * 1000;
    const session: Session = {
      id: newId(now), appId: app.id, subject: input.subject, claims: input.claims, audience: input.audience ?? null,
      createdAt: now, lastRenewedAt: now, expiresAt, ip, userAgent, lastIp: ip, lastUserAgent: userAgent,
      revokedAt: null, revokeReason: null, horizonAt: now,
    };
    const pairId = newId(now);
    const plan = this.planRefresh(app, format, session, now, pairId, null);
    const accessExp = this.accessExp(app, session, now, input.accessTtl);
    session.horizonAt = Math.max(accessExp * 1000, plan?.record.expiresAt ?? 0);
    const key = await this.deps.keyring.activeKey(app);
    const ctx = this.mintContext(app, session, now, accessExp, pairId, plan?.record ?? null);
    const refreshParts = plan && format.refreshFormat === 'jwt' ? format.refreshToken(ctx) : null;
    const refreshToken = plan ? (refreshParts ? signJwt(key, refreshParts.payload, refreshParts.header) : plan.opaque) : null;
    // Signed before the commit so that a token too long to verify is refused with nothing stored;
    // returned only after it (N1).
    const issued = this.finish(app, session, key, ctx, format, refreshToken, refreshParts?.payload ?? null, now);
    assertUsableLength(issued);
    const result = await this.deps.store.issueSession({
      session, refresh: plan?.record ?? null, newSubjectClaims: {}, revokeOthers: input.revokeOthers,
    });
    if (!result.issued) throw new RotorError('subject_disabled', 'the subject is disabled');
    return issued;
  }

  // ── refresh ────────────────────────────────────────────────────────────────────────────────────

  /**
   * Renews a session from its refresh token. `client` restricts the token to one app (OAuth client,
   * dialect path): another app's token is refused and left untouched.
   */
  async refresh(token: unknown, options: RefreshOptions = {}): Promise<Issued> {
    try {
      return await this.refreshOrThrow(token, options);
    } catch (err) {
      if (err instanceof RotorError && err.code !== 'store_unavailable' && err.reason !== 'reused') {
        this.deps.observer.refresh('refused', err.reason ?? err.code, options.client?.id ?? null);
      }
      throw err;
    }
  }

  private async refreshOrThrow(token: unknown, options: RefreshOptions): Promise<Issued> {
    const ref = await this.refreshIdOf(token, options.client);
    const found = await this.deps.store.findRefresh(ref.id);
    if (!found) throw invalidRefreshToken('unknown');
    if (!(await this.signedByLiveKey(ref, found))) throw invalidRefreshToken('unknown');
    if (options.client && found.record.appId !== options.client.id) throw invalidRefreshToken('unknown');
    const app = options.client ?? (await this.deps.apps.byId(found.record.appId));
    if (!app) throw invalidRefreshToken('unknown');
    if (options.profile && app.profile !== options.profile) throw invalidRefreshToken('unknown');
    if (options.expectSessionId !== undefined && found.session.id !== options.expectSessionId) throw invalidRefreshToken('unknown');
    // Before anything is consumed or judged reuse: a confidential app's token alone redeems nothing.
    if (!app.public && !(options.clientAuthenticated === true && options.client?.id === app.id)) {
      throw new RotorError('invalid_app_key', 'this app is confidential: its refresh tokens are redeemed only with its app key', { reason: 'client_authentication_required' });
    }
    return this.renewFrom(app, found, recordableClient(options.context), 0);
  }

  private async renewFrom(
    app: App,
    found: FoundRefresh,
    client: ClientContext,
    attempt: number,
  ): Promise<Issued> {
    const now = this.nowMs();
    const { record, session } = found;
    if (now >= record.expiresAt) throw invalidRefreshToken('expired');
    this.assertSessionAlive(app, session, found.subjectStatus, now);
    if (record.consumedAt !== null) return this.replayed(app, found, client, now);
    // Without a not-before delay there is nothing to wait for: a clock behind the issuer's (another instance's,
    // or after a step back) must not refuse a fresh token (SECURITY-CASES F-10, F-11).
    if (app.policy.refreshNotBefore > 0 && now < record.notBefore) throw invalidRefreshToken('not_yet_valid');
    this.assertBinding(app, session, client);

    const format = formatFor(app.profile);
    const pairId = newId(now);
    const plan = this.planRefresh(app, format, session, now, pairId, record.id);
    if (!plan) throw invalidRefreshToken('unknown');
    const key = await this.deps.keyring.activeKey(app, found.keysVersion);
    const accessExp = this.accessExp(app, session, now);
    const ctx = this.mintContext(app, session, now, accessExp, pairId, plan.record);
    const refreshParts = format.refreshFormat === 'jwt' ? format.refreshToken(ctx) : null;
    const refreshToken = refreshParts ? signJwt(key, refreshParts.payload, refreshParts.header) : plan.opaque;
    const successorSealed = app.policy.reuseGrace > 0
      ? this.deps.masterKey.seal('refresh-successor', Buffer.from(refreshToken), record.id)
      : null;
    const recordClient = app.policy.binding !== 'off';
    const { rotated } = await this.deps.store.rotateRefresh({
      parentId: record.id, child: plan.record, successorSealed, now,
      lastIp: recordClient ? client.ip ?? null : null, lastUserAgent: recordClient ? client.userAgent ?? null : null,
    });
    if (!rotated) {
      // Another request consumed the parent first, or the session was revoked meanwhile: decide again
      // from what was committed.
      const again = await this.deps.store.findRefresh(record.id);
      if (!again || attempt > 0) throw invalidRefreshToken('revoked');
      return this.renewFrom(app, again, client, attempt + 1);
    }
    this.deps.observer.refresh('rotated', 'ok', app.id);
    const renewed = { ...session, lastRenewedAt: now };
    return this.finish(app, renewed, key, ctx, format, refreshToken, refreshParts?.payload ?? null, now);
  }

  /**
   * A consumed token came back. Inside the grace window, and while its successor is unused, this is a
   * retry: answer with the very same successor. Anything else is reuse: the session dies.
   */
  private async replayed(
    app: App,
    found: FoundRefresh,
    client: ClientContext,
    now: Millis,
  ): Promise<Issued> {
    const { record, session } = found;
    const grace = app.policy.reuseGrace * 1000;
    // A clock up to the nbf leeway behind the consuming one's (another instance, F-11) still sees a retry, not reuse.
    const inWindow = grace > 0 && record.consumedAt !== null && now - record.consumedAt < grace && now + NBF_LEEWAY_SECONDS * 1000 >= record.consumedAt;
    const bindingOk = app.policy.binding !== 'useragent' || (client.userAgent ?? null) === session.userAgent;
    if (inWindow && bindingOk && record.successorId && record.successorSealed) {
      const child = await this.deps.store.findRefresh(record.successorId);
      if (child && child.record.consumedAt === null && !child.session.revokedAt && now < child.record.expiresAt) {
        const successor = this.deps.masterKey.open('refresh-successor', record.successorSealed, record.id).toString();
        const format = formatFor(app.profile);
        const key = await this.deps.keyring.activeKey(app, child.keysVersion);
        const accessExp = this.accessExp(app, session, now);
        const ctx = this.mintContext(app, session, now, accessExp, newId(), child.record);
        this.deps.observer.refresh('retry', 'grace', app.id);
        const refreshPayload = format.refreshFormat === 'jwt' ? decodeJwt(successor)?.payload ?? null : null;
        const issued = this.finish(app, session, key, ctx, format, successor, refreshPayload, now);
        issued.refreshExpiresIn = Math.max(0, toSeconds(child.record.expiresAt - now));
        return issued;
      }
    }
    const revoked = await this.deps.store.revokeSession(session.id, 'reuse', now);
    this.deps.observer.refresh('reuse', 'reused', app.id);
    if (revoked) this.deps.observer.event('reuse_detected', { appId: app.id, sessionId: session.id });
    throw invalidRefreshToken('reused');
  }

  /**
   * A new access token in the session of a verified one, without touching its refresh chain
   * (Verifik renewals). The session must be alive; `accessTtl` overrides the policy's.
   */
  async renewAccess(access: VerifiedAccess, options: { accessTtl?: number; context?: ClientContext } = {}): Promise<Issued> {
    const { app, session } = access;
    const now = this.nowMs();
    const format = formatFor(app.profile);
    const key = await this.deps.keyring.activeKey(app, access.keysVersion);
    const accessExp = this.accessExp(app, session, now, options.accessTtl);
    const recordClient = app.policy.binding !== 'off';
    const touched = await this.deps.store.touchSession({
      sessionId: session.id, now, horizonAt: accessExp * 1000,
      lastIp: recordClient ? options.context?.ip ?? null : null,
      lastUserAgent: recordClient ? options.context?.userAgent ?? null : null,
    });
    if (!touched) throw invalidAccessToken('revoked');
    const ctx = this.mintContext(app, session, now, accessExp, newId(), null);
    return this.finish(app, { ...session, lastRenewedAt: now }, key, ctx, format, null, null, now);
  }

  /**
   * The stored id of a presented refresh token, after checking its form (and signature, for JWTs,
   * against the cached keys: `signedByLiveKey` confirms the key once the record's query is in).
   */
  private async refreshIdOf(token: unknown, client: App | undefined, options: { revocable?: boolean } = {}): Promise<RefreshRef> {
    if (typeof token !== 'string' || token.length === 0) throw invalidRefreshToken('malformed');
    if (isOpaqueRefreshToken(token)) return { id: opaqueRefreshId(token), kid: null };
    // Expiry is judged from the stored record (the same instant as the JWT's `exp`), so allow it here.
    const verified = await this.verifyJwt(token, client, { allowExpired: true, revocable: options.revocable });
    if (!verified) throw invalidRefreshToken(token.startsWith('rt_') ? 'unknown' : 'malformed');
    const format = formatFor(verified.app.profile);
    const id = format.refreshFormat === 'jwt' ? format.refreshIdOf(verified.parts) : null;
    if (!id) throw invalidRefreshToken('malformed');
    return { id, kid: verified.kid };
  }

  /** A JWT refresh token's key is still usable as of the version read with its record (S2-13). */
  private async signedByLiveKey(ref: RefreshRef, found: FoundRefresh): Promise<boolean> {
    return ref.kid === null || this.deps.keyring.stillVerifies(found.record.appId, ref.kid, found.keysVersion);
  }

  /**
   * The app a presented refresh or access token belongs to, if it is genuine (signature, or a known
   * opaque token), without consuming or changing anything; null otherwise. For checks that must come
   * before a refresh is attempted, such as a browser origin allowed per app (SPEC §2.11).
   */
  async appOfToken(token: unknown): Promise<App | null> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return null;
    try {
      const ref = await this.refreshIdOf(token, undefined, { revocable: true });
      const found = await this.deps.store.findRefresh(ref.id);
      if (found && (await this.signedByLiveKey(ref, found))) return this.deps.apps.byId(found.record.appId);
    } catch (err) {
      if (!(err instanceof RotorError) || err.code === 'store_unavailable') throw err;
    }
    const verified = await this.verifyJwt(token, undefined, { allowExpired: true });
    return verified?.app ?? null;
  }

  /** RFC 7662: what a token is, if it is alive and belongs to `client`; `{active:false}` otherwise. */
  async introspect(token: unknown, client: App): Promise<Introspection> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return { active: false };
    const now = this.nowMs();
    try {
      const ref = await this.refreshIdOf(token, client);
      const found = await this.deps.store.findRefresh(ref.id);
      if (found && found.record.appId === client.id && found.record.consumedAt === null && now < found.record.expiresAt && (await this.signedByLiveKey(ref, found))) {
        this.assertSessionAlive(client, found.session, found.subjectStatus, now);
        return {
          active: true, tokenType: 'refresh_token', sub: found.session.subject, sid: found.session.id,
          exp: toSeconds(found.record.expiresAt), iat: toSeconds(found.record.issuedAt), claims: found.session.claims,
        };
      }
    } catch (err) {
      if (!(err instanceof RotorError) || err.code === 'store_unavailable') throw err;
    }
    try {
      const access = await this.verifyAccess(token, { client });
      const reserved = formatFor(client.profile).reservedClaims;
      const claims: JsonObject = {};
      for (const [k, v] of Object.entries(access.payload)) if (!reserved.has(k)) claims[k] = v;
      return {
        active: true, tokenType: 'access_token', sub: access.session.subject, sid: access.session.id,
        exp: numericDate(access.payload.exp) ?? undefined, iat: numericDate(access.payload.iat) ?? undefined, claims,
      };
    } catch (err) {
      if (!(err instanceof RotorError) || err.code === 'store_unavailable') throw err;
    }
    return { active: false };
  }

  // ── verification and revocation ────────────────────────────────────────────────────────────────

  /**
   * Checks a JWT's signature with the key its `kid` names, within `client` when given (key lookup is
   * scoped to the tenant), and its time claims. Returns null for anything not genuine.
   */
  async verifyJwt(
    token: string,
    client: App | undefined,
    options: {
      allowExpired: boolean;
      /**
       * Revocation: a not-before as far ahead as the app's own `refreshNotBefore` puts it is fine, so a
       * refresh token Rotor issued is revocable from its first second (S2-03); one further ahead was
       * never Rotor's and stays refused.
       */
      revocable?: boolean;
    },
  ): Promise<{ app: App; kid: string; parts: JwtParts; decoded: DecodedJwt } | null> {
    const decoded = decodeJwt(token);
    if (!decoded) return null;
    const kid = headerKid(decoded.header);
    if (!kid) return null;
    let app = client;
    if (!app) {
      const record = await this.deps.store.findSigningKey(kid);
      if (!record) return null;
      app = (await this.deps.apps.byId(record.appId)) ?? undefined;
      if (!app) return null;
    }
    // The cached keys decide the signature; callers confirm the key against the version their own
    // store read returns (verifyAccess, signedByLiveKey), so no extra query is spent here.
    const key = await this.deps.keyring.verificationKey(app.id, kid, 'cached');
    if (!key || !verifySignature(decoded, key)) return null;
    const now = toSeconds(this.nowMs());
    const exp = numericDate(decoded.payload.exp);
    if (exp === null || (!options.allowExpired && now >= exp)) return null;
    if ('nbf' in decoded.payload) {
      const nbf = numericDate(decoded.payload.nbf);
      const slack = options.revocable ? app.policy.refreshNotBefore : 0;
      if (nbf === null || nbf > now + NBF_LEEWAY_SECONDS + slack) return null;
    }
    const expectedIssuer = formatFor(app.profile).expectedIssuer(app, this.deps.issuer);
    if (expectedIssuer !== null && decoded.payload.iss !== expectedIssuer) return null;
    return { app, kid, parts: { header: decoded.header, payload: decoded.payload }, decoded };
  }

  /** A genuine, unexpired access token whose session is alive; otherwise `invalid_access_token`. */
  async verifyAccess(token: unknown, options: {
    client?: App; allowExpired?: boolean; profile?: App['profile'];
  } = {}): Promise<VerifiedAccess> {
    if (typeof token !== 'string' || token.length === 0) throw invalidAccessToken('malformed');
    const verified = await this.verifyJwt(token, options.client, { allowExpired: options.allowExpired ?? false });
    if (!verified) throw invalidAccessToken('invalid');
    const { app, parts } = verified;
    if (options.profile && app.profile !== options.profile) throw invalidAccessToken('invalid');
    const format = formatFor(app.profile);
    if (!format.isAccessToken(parts)) throw invalidAccessToken('invalid');
    const found = await this.sessionOf(app, format, parts.payload);
    if (!found) throw invalidAccessToken('revoked');
    if (!(await this.deps.keyring.stillVerifies(app.id, verified.kid, found.keysVersion))) throw invalidAccessToken('invalid');
    return { app, session: found.session, payload: parts.payload, header: parts.header, keysVersion: found.keysVersion };
  }

  private async sessionOf(app: App, format: TokenFormat, payload: JsonObject): Promise<{ session: Session; keysVersion: number } | null> {
    const locator = format.sessionOf(payload);
    if (!locator) return null;
    const found: { session: Session; subjectStatus: SubjectStatus | null; keysVersion: number } | null = 'sessionId' in locator
      ? await this.deps.store.findSession(locator.sessionId)
      : await this.deps.store.findRefresh(locator.refreshId);
    if (!found || found.session.appId !== app.id) return null;
    if (typeof payload.sub === 'string' && payload.sub !== found.session.subject) return null;
    try {
      this.assertSessionAlive(app, found.session, found.subjectStatus, this.nowMs());
    } catch {
      return null;
    }
    if (found.session.audience !== null && payload.aud !== undefined && payload.aud !== found.session.audience) return null;
    return { session: found.session, keysVersion: found.keysVersion };
  }

  /**
   * RFC 7009 semantics: revokes the session of a valid refresh or access token; anything else is
   * silently ignored. Store failures still throw (a revocation is never falsely confirmed).
   */
  async revokeToken(token: unknown, client?: App): Promise<{ revoked: boolean }> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return { revoked: false };
    let sessionId: string | null = null;
    let appId: string | null = null;
    try {
      // Revocable from the moment it was issued: its not-before delay limits renewal, not logout (S2-03).
      const ref = await this.refreshIdOf(token, client, { revocable: true });
      const found = await this.deps.store.findRefresh(ref.id);
      if (found && (!client || found.record.appId === client.id) && this.nowMs() < found.record.expiresAt && (await this.signedByLiveKey(ref, found))) {
        sessionId = found.session.id;
        appId = found.record.appId;
      }
    } catch (err) {
      if (!(err instanceof RotorError) || err.code === 'store_unavailable') throw err;
    }
    if (!sessionId) {
      try {
        const access = await this.verifyAccess(token, { client });
        sessionId = access.session.id;
        appId = access.app.id;
      } catch (err) {
        if (!(err instanceof RotorError) || err.code === 'store_unavailable') throw err;
      }
    }
    if (!sessionId) return { revoked: false };
    return { revoked: await this.revokeSession(sessionId, 'revoked', appId) };
  }

  async revokeSession(sessionId: string, reason: string, appId: string | null): Promise<boolean> {
    const revoked = await this.deps.store.revokeSession(sessionId, reason, this.nowMs());
    if (revoked) this.deps.observer.event('session_revoked', { appId, sessionId, reason });
    return revoked;
  }

  // ── helpers ────────────────────────────────────────────────────────────────────────────────────

  private assertSessionAlive(app: App, session: Session, subjectStatus: SubjectStatus | null, now: Millis): void {
    if (subjectStatus === 'disabled') throw new RotorError('subject_disabled', 'the subject is disabled', { reason: 'subject_disabled' });
    if (subjectStatus === null) throw new RotorError('invalid_refresh_token', 'revoked', { reason: 'subject_not_found' });
    if (session.revokedAt !== null) throw invalidRefreshToken('revoked');
    if (session.expiresAt !== null && now >= session.expiresAt) throw invalidRefreshToken('expired');
    const idle = app.policy.sessionIdleTimeout;
    if (idle !== null && now - session.lastRenewedAt >= idle * 1000) throw invalidRefreshToken('expired');
  }

  private assertBinding(app: App, session: Session, client: ClientContext): void {
    if (app.policy.binding === 'useragent' && (client.userAgent ?? null) !== session.userAgent) {
      throw new RotorError('invalid_refresh_token', 'revoked', { reason: 'binding_mismatch' satisfies RefreshRefusal });
    }
  }

  private accessExp(app: App, session: Session, now: Millis, ttl = app.policy.accessTtl): number {
    const exp = toSeconds(now) + ttl;
    return session.expiresAt === null ? exp : Math.min(exp, toSeconds(session.expiresAt));
  }

  /** The next refresh record of a session (opaque token generated here), or null without refresh tokens. */
  private planRefresh(
    app: App, format: TokenFormat, session: Session, now: Millis, pairId: string, parentId: string | null,
  ): { record: RefreshRecord; opaque: string } | null {
    const ttl = app.policy.refreshTtl;
    if (ttl === null || format.refreshFormat === 'none') return null;
    const opaque = format.refreshFormat === 'opaque' ? newOpaqueRefreshToken() : '';
    const id = format.refreshFormat === 'opaque' ? opaqueRefreshId(opaque) : format.refreshRecordId({ pairId, refreshJti: newId() });
    let expiresAt = now + ttl * 1000;
    if (session.expiresAt !== null) expiresAt = Math.min(expiresAt, session.expiresAt);
    // Whole seconds, so that a JWT's `exp` and the stored expiry agree exactly.
    expiresAt = Math.floor(expiresAt / 1000) * 1000;
    const notBefore = Math.floor(now / 1000) * 1000 + app.policy.refreshNotBefore * 1000;
    return {
      record: {
        id, sessionId: session.id, appId: app.id, parentId, issuedAt: now, notBefore, expiresAt,
        consumedAt: null, successorId: null, successorSealed: null,
      },
      opaque,
    };
  }

  private mintContext(app: App, session: Session, now: Millis, accessExp: number, pairId: string, refresh: RefreshRecord | null): MintContext {
    return {
      app, session, issuer: this.deps.issuer, now: toSeconds(now), accessExp, pairId,
      refresh: refresh && { id: refresh.id, notBefore: toSeconds(refresh.notBefore), exp: toSeconds(refresh.expiresAt) },
    };
  }

  private finish(
    app: App, session: Session, key: SigningKey, ctx: MintContext, format: TokenFormat,
    refreshToken: string | null, refreshPayload: JsonObject | null, now: Millis,
  ): Issued {
    const access = format.accessToken(ctx);
    return {
      app, session, key,
      accessToken: signJwt(key, access.payload, access.header),
      accessPayload: access.payload,
      expiresIn: Math.max(0, ctx.accessExp - toSeconds(now)),
      refreshToken,
      refreshExpiresIn: ctx.refresh ? Math.max(0, ctx.refresh.exp - toSeconds(now)) : null,
      refreshPayload,
    };
  }
}

/** S2-09: a token that verification would refuse is never issued; the caller learns why, nothing is stored. */
function assertUsableLength(issued: Issued): void {
  const longest = Math.max(issued.accessToken.length, issued.refreshToken?.length ?? 0);
  if (longest > MAX_ISSUED_TOKEN_LENGTH) {
    throw new RotorError('invalid_request', `the claims make a token of ${longest} characters; tokens are limited to ${MAX_ISSUED_TOKEN_LENGTH} so that they always verify: send fewer or shorter claims`);
  }
}
