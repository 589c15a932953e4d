import { decodeJwt, headerKid, MAX_TOKEN_LENGTH, numericDate, signJwt, verifySignature, type DecodedJwt } from '../crypto/jwt.js';
import { DPOP_ALGORITHMS, DPOP_WINDOW_SECONDS, isFreshNonce, issueNonce, verifyDpopProof, type DpopRefusal } from '../crypto/dpop.js';
import type { MasterKey } from '../crypto/master_key.js';
import { sha256 } from '../crypto/secrets.js';
import type { SigningKey } from '../crypto/signing_key.js';
import { UPGRADED, type FoundLegacyRefresh, type FoundSession, type Store } from '../store/contract.js';
import { recordableClient } from './claims.js';
import { toSeconds, type Clock } from './clock.js';
import { invalidAccessToken, invalidRefreshToken, RotorError, type RefreshRefusal } from './errors.js';
import type { Observer } from './events.js';
import { formatFor, type JwtParts, type MintContext, type TokenFormat } from './formats/index.js';
import { newId } from './ids.js';
import type { Keyring } from './keyring.js';
import { RefreshIds, type Presented } from './refresh_ids.js';
import type { App, JsonObject, Millis, RefreshChain, RefreshRecord, Session, SubjectStatus } from './types.js';

/** Clock leeway for `nbf` (skew between instances). `exp` has none: a token is valid while now < exp. */
export const NBF_LEEWAY_SECONDS = 30;

/**
 * The longest token Rotor issues (S2-09): verification refuses anything over MAX_TOKEN_LENGTH, and a
 * renewal's token may be longer than the issuance's (a later `exp`; after an algorithm change another
 * key's signature: from HS256's 43 characters to RSA-4096's 683), so issuance keeps this margin below
 * it and every token it hands out, and every renewal of it, stays usable.
 */
export const MAX_ISSUED_TOKEN_LENGTH = MAX_TOKEN_LENGTH - 768;

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
  /** `DPoP` when the access token is bound to a key (`cnf.jkt`), else `Bearer`. */
  tokenType: 'Bearer' | 'DPoP';
  /** A fresh server nonce for the client's next proof, where the app demands nonces. */
  dpopNonce: string | null;
}

export interface VerifiedAccess {
  app: App;
  session: Session;
  payload: JsonObject;
  header: JsonObject;
  /** The app's signing-key version read with the session (S2-13). */
  keysVersion: number;
}

export interface Introspection {
  active: boolean;
  tokenType?: 'access_token' | 'refresh_token';
  sub?: string;
  sid?: string;
  exp?: number;
  iat?: number;
  claims?: JsonObject;
  /** The token's issuer and audience (RFC 7662 `iss`, `aud`), where it has them. */
  iss?: string;
  aud?: unknown;
  /** The DPoP key thumbprint the token is bound to (RFC 7662 + RFC 9449 `cnf.jkt`). */
  cnfJkt?: string;
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
  /**
   * The request's DPoP proof (RFC 9449), where the endpoint can carry one (`/v1/refresh`, `/oauth2/token`):
   * `proof` null when absent. Undefined: a dialect endpoint, where a bound session is an invalid token.
   */
  dpop?: DpopInput;
}

export interface DpopInput {
  proof: string | null;
  /** The request's method and URI as a proof must name them (`htu` judged against ROTOR_ISSUER). */
  htm: string;
  htu: string;
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
 * A presented refresh token, found: a generation of a session's chain, or a pre-upgrade record. `kid`
 * is the key that signed a JWT one (confirmed against the version read with the row, S2-13).
 */
type Located =
  | { kind: 'chain'; found: FoundSession; generation: number; kid: string | null }
  | { kind: 'legacy'; found: FoundLegacyRefresh; kid: string | null };

/** The DPoP check of one request applied to a session: the proof's key thumbprint, or null (see proofFor). */
type ProofCheck = (session: Session) => Promise<string | null>;

/** The live refresh token of a session as JWTPlus get-session shows it. */
export type LiveRefresh = Pick<RefreshRecord, 'id' | 'issuedAt' | 'notBefore' | 'expiresAt'>;

/**
 * The rotation engine: issues sessions, renews them, detects reuse, verifies and revokes tokens.
 * It knows the storage contract and the token formats, nothing of HTTP or SQL.
 *
 * A session's refresh state is one chain on its row (SPEC §2.9): generation g is live, g − 1 may retry
 * within the grace window, anything older is reuse. Tokens name (session, generation) under keys derived
 * from the master key, so nothing per token is stored and a guess costs no store read.
 */
export class Engine {
  private readonly ids: RefreshIds;
  private readonly nonceKey: Buffer;

  constructor(private readonly deps: EngineDeps) {
    this.ids = new RefreshIds(deps.masterKey);
    this.nonceKey = deps.masterKey.derive('dpop-nonce');
  }

  private nowMs(): Millis {
    return this.deps.clock.now();
  }

  // ── issuance ───────────────────────────────────────────────────────────────────────────────────

  async issue(app: App, input: {
    subject: string; claims: JsonObject; audience?: string | null; client?: ClientContext;
    /** Binds the session to this key's thumbprint (SPEC §4.1 `dpopJkt`). */
    dpopJkt?: string | null;
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
      revokedAt: null, revokeReason: null, horizonAt: now, refresh: null,
      locator: format.chainId?.locatesSession ? this.ids.newLocator() : null,
      dpopJkt: input.dpopJkt ?? null,
    };
    if (session.dpopJkt !== null && (app.policy.dpop === 'off' || !format.bindsAccessTokens)) {
      throw new RotorError('invalid_request', `a ${app.profile} app cannot bind sessions with dpopJkt (DPoP binds native apps whose policy dpop is not off)`);
    }
    const key = await this.deps.keyring.activeKey(app);
    const accessExp = this.accessExp(app, session, now, input.accessTtl);
    const chain = this.nextChain(app, session, 1, now);
    const minted = chain ? this.mintRefresh(app, format, session, chain, key, now, accessExp, session.dpopJkt) : null;
    session.refresh = minted?.chain ?? null;
    session.horizonAt = Math.max(accessExp * 1000, chain?.expiresAt ?? 0);
    // Signed before the commit so that a token too long to verify is refused with nothing stored;
    // returned only after it (N1).
    const issued = this.finish(app, session, key, minted?.ctx ?? this.mintContext(app, session, now, accessExp, null, session.dpopJkt), format, minted, now);
    assertUsableLength(issued);
    const result = await this.deps.store.issueSession({ session, newSubjectClaims: {}, revokeOthers: input.revokeOthers });
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
    const located = await this.locate(token, options.client, {});
    if (!located) throw invalidRefreshToken('unknown');
    const { session } = located.found;
    if (options.client && session.appId !== options.client.id) throw invalidRefreshToken('unknown');
    const app = options.client ?? (await this.deps.apps.byId(session.appId));
    if (!app) throw invalidRefreshToken('unknown');
    if (options.profile && app.profile !== options.profile) throw invalidRefreshToken('unknown');
    if (options.expectSessionId !== undefined && session.id !== options.expectSessionId) throw invalidRefreshToken('unknown');
    // Before anything is consumed or judged reuse: a confidential app's token alone redeems nothing.
    if (!app.public && !(options.clientAuthenticated === true && options.client?.id === app.id)) {
      throw new RotorError('invalid_app_key', 'this app is confidential: its refresh tokens are redeemed only with its app key', { reason: 'client_authentication_required' });
    }
    const proof = this.proofFor(app, options.dpop);
    const client = recordableClient(options.context);
    const issued = located.kind === 'chain'
      ? await this.renewChain(app, located.found, located.generation, client, proof, 0)
      : await this.renewLegacy(app, located.found, client, proof, 0);
    issued.dpopNonce = app.policy.dpopNonce && options.dpop ? issueNonce(this.nonceKey, toSeconds(this.nowMs()), app.id) : null;
    return issued;
  }

  /**
   * The DPoP check of one request (RFC 9449; SPEC §2.10), applied to the session as it stands when a
   * token is judged live or a retry (never before: an ancestor is reuse whatever proof it comes with).
   * The proof itself is verified once per request (signature, claims, nonce, replay); it must then fit
   * the session: a bound session needs a proof by its key, an app that requires DPoP needs a proof, and
   * at an endpoint that cannot carry one (a dialect) either is an invalid token. Null: no proof, none
   * needed. DPoP binds native-profile apps only: a dialect's token layout has no room for `cnf`.
   */
  private proofFor(app: App, input: DpopInput | undefined): ProofCheck {
    const mode = formatFor(app.profile).bindsAccessTokens ? app.policy.dpop : 'off';
    let verified: Promise<string> | null = null;
    return async (session) => {
      if (input === undefined) {
        if (session.dpopJkt !== null || mode === 'required') throw invalidRefreshToken('unknown');
        return null;
      }
      if (mode === 'off' && session.dpopJkt === null) return null;
      if (input.proof === null) {
        if (session.dpopJkt !== null || mode === 'required') throw this.dpopRefusal(app, { error: 'invalid_dpop_proof', detail: 'a DPoP proof is required' });
        return null;
      }
      verified ??= this.verifyProof(app, input.proof, input);
      const jkt = await verified;
      if (session.dpopJkt !== null && jkt !== session.dpopJkt) {
        throw this.dpopRefusal(app, { error: 'invalid_dpop_proof', detail: 'the proof is not made with the key the session is bound to' });
      }
      return jkt;
    };
  }

  private async verifyProof(app: App, proof: string, input: DpopInput): Promise<string> {
    const now = toSeconds(this.nowMs());
    const checked = await verifyDpopProof(proof, {
      htm: input.htm, htu: input.htu, nowSeconds: now,
      nonce: app.policy.dpopNonce ? (nonce) => isFreshNonce(this.nonceKey, nonce, now, app.id) : null,
    });
    if ('error' in checked) throw this.dpopRefusal(app, checked);
    // Across instances, for as long as the proof's iat can be accepted (and a second more).
    const first = await this.deps.store.useDpopProof({
      key: sha256(`${checked.jkt}:${checked.jti}`).toString('base64url'), expiresAt: (now + 2 * DPOP_WINDOW_SECONDS + 1) * 1000,
    });
    if (!first) throw this.dpopRefusal(app, { error: 'invalid_dpop_proof', detail: 'the proof was used before' });
    return checked.jkt;
  }

  private dpopRefusal(app: App, refusal: DpopRefusal): RotorError {
    const headers: Record<string, string> = {
      'WWW-Authenticate': `DPoP error="${refusal.error}", algs="${DPOP_ALGORITHMS.join(' ')}"`,
    };
    if (app.policy.dpopNonce) headers['DPoP-Nonce'] = issueNonce(this.nonceKey, toSeconds(this.nowMs()), app.id);
    return new RotorError(refusal.error, refusal.detail, { reason: refusal.error, headers });
  }

  /** Generation `g` of a session's chain was presented. */
  private async renewChain(app: App, found: FoundSession, g: number, client: ClientContext, proof: ProofCheck, attempt: number): Promise<Issued> {
    const now = this.nowMs();
    const { session } = found;
    const chain = session.refresh;
    if (!chain || g > chain.generation) throw invalidRefreshToken('unknown');
    this.assertSessionAlive(app, session, found.subjectStatus, now);
    if (g < chain.generation) return this.replayedChain(app, found, g, client, proof, now);
    if (now >= chain.expiresAt) throw invalidRefreshToken('expired');
    this.assertNotBefore(app, chain.notBefore, now);
    this.assertBinding(app, session, client);
    // The live token: now the proof, before anything is consumed.
    const jkt = await proof(session);
    const issued = await this.rotate(app, found, client, jkt, now, (input) => this.deps.store.rotateSession(input));
    if (issued) return issued;
    // Another request rotated it first, or the session was revoked meanwhile: decide again from what was committed.
    const again = await this.deps.store.findSession(session.id);
    if (!again || attempt > 0) throw invalidRefreshToken('revoked');
    return this.renewChain(app, again, g, client, proof, attempt + 1);
  }

  /**
   * Mints the session's next generation and writes it with one compare-and-set (`write`); null when the
   * write lost. The response is built only after it committed (N1).
   */
  private async rotate(
    app: App, found: FoundSession, client: ClientContext, jkt: string | null, now: Millis,
    write: (input: Parameters<Store['rotateSession']>[0], locator: string | null) => Promise<{ rotated: boolean }>,
  ): Promise<Issued | null> {
    const format = formatFor(app.profile);
    // A pre-upgrade session of a profile whose ids carry a locator gets one with its first generation.
    const locator = format.chainId?.locatesSession && found.session.locator === null ? this.ids.newLocator() : null;
    const session = locator === null ? found.session : { ...found.session, locator };
    const generation = (session.refresh?.generation ?? 0) + 1;
    const chain = this.nextChain(app, session, generation, now);
    if (!chain) throw invalidRefreshToken('unknown');
    const key = await this.deps.keyring.activeKey(app, found.keysVersion);
    const accessExp = this.accessExp(app, session, now);
    const minted = this.mintRefresh(app, format, session, chain, key, now, accessExp, jkt ?? session.dpopJkt);
    const recordClient = app.policy.binding !== 'off';
    // A public client's first proof binds its session (RFC 9449 §5); a confidential client's does not.
    const bindJkt = app.public && session.dpopJkt === null ? jkt : null;
    const { rotated } = await write({
      bindJkt,
      sessionId: session.id, expectGeneration: generation - 1, next: minted.chain, now,
      lastIp: recordClient ? client.ip ?? null : null, lastUserAgent: recordClient ? client.userAgent ?? null : null,
      horizonAt: Math.max(accessExp * 1000, chain.expiresAt),
    }, locator);
    if (!rotated) return null;
    this.deps.observer.refresh('rotated', 'ok', app.id);
    const renewed: Session = { ...session, lastRenewedAt: now, refresh: minted.chain, dpopJkt: session.dpopJkt ?? bindJkt };
    return this.finish(app, renewed, key, minted.ctx, format, minted, now);
  }

  /**
   * An older generation came back. Its parent generation, inside the grace window, is a retry: answer
   * with the very same successor (an opaque one is recomputed, a JWT one unsealed). Anything else is
   * reuse: the session dies.
   */
  private async replayedChain(app: App, found: FoundSession, g: number, client: ClientContext, proof: ProofCheck, now: Millis): Promise<Issued> {
    const chain = found.session.refresh as RefreshChain;
    const isParent = g === chain.generation - 1 && g >= 1;
    // A rotation the store could not confirm durable (a 503 was answered, SPEC §7) leaves its parent
    // redeemable for the same successor whatever the grace window: the client's retry is never reuse.
    const unconfirmed = found.rotation === 'unconfirmed';
    const bindingOk = app.policy.binding !== 'useragent' || (client.userAgent ?? null) === found.session.userAgent;
    const retry = unconfirmed ? bindingOk : this.inGrace(app, found.session, chain.issuedAt, client, now);
    if (isParent && retry && now < chain.expiresAt) {
      const successor = this.liveToken(app, found.session, chain);
      if (successor !== null) {
        // A retry must fit the session as it is now (bound, maybe, by the request that won).
        const jkt = await proof(found.session);
        // Answered only once the rotation it hands out is durable.
        if (found.rotation) await this.deps.store.confirmRotation?.(found.session.id, chain.generation);
        return this.retried(app, found, chain, successor, jkt, now);
      }
    }
    return this.reuse(app, found.session, now);
  }

  // ── pre-upgrade records (SPEC §2.9: they keep working until they expire) ───────────────────────

  /** A pre-upgrade token: its one rotation moves the session onto its chain. */
  private async renewLegacy(app: App, found: FoundLegacyRefresh, client: ClientContext, proof: ProofCheck, attempt: number): Promise<Issued> {
    const now = this.nowMs();
    const { record, session } = found;
    if (now >= record.expiresAt) throw invalidRefreshToken('expired');
    this.assertSessionAlive(app, session, found.subjectStatus, now);
    if (record.consumedAt !== null) return this.replayedLegacy(app, found, client, proof, now);
    if (session.refresh !== null) throw invalidRefreshToken('unknown');
    this.assertNotBefore(app, record.notBefore, now);
    this.assertBinding(app, session, client);
    const jkt = await proof(session);
    const issued = await this.rotate(app, found, client, jkt, now, (input, locator) => this.deps.store.upgradeLegacy({ ...input, legacyId: record.id, locator }));
    if (issued) return issued;
    const again = await this.deps.store.findLegacyRefresh(record.id);
    if (!again || attempt > 0) throw invalidRefreshToken('revoked');
    return this.renewLegacy(app, again, client, proof, attempt + 1);
  }

  private async replayedLegacy(app: App, found: FoundLegacyRefresh, client: ClientContext, proof: ProofCheck, now: Millis): Promise<Issued> {
    const { record, session } = found;
    const consumedAt = record.consumedAt as Millis;
    if (this.inGrace(app, session, consumedAt, client, now)) {
      const chain = session.refresh;
      // Its successor is the chain's first generation, still live.
      if (record.successorId === UPGRADED && chain?.generation === 1 && now < chain.expiresAt) {
        const successor = this.liveToken(app, session, chain);
        if (successor !== null) return this.retried(app, found, chain, successor, await proof(session), now);
      }
      // Its successor is another pre-upgrade record, still live (sealed on this one).
      if (record.successorId !== UPGRADED && record.successorId && record.successorSealed && chain === null) {
        const child = await this.deps.store.findLegacyRefresh(record.successorId);
        if (child && child.record.consumedAt === null && now < child.record.expiresAt) {
          const successor = this.deps.masterKey.open('refresh-successor', record.successorSealed, record.id).toString();
          return this.retried(app, found, { generation: 0, issuedAt: child.record.issuedAt, notBefore: child.record.notBefore, expiresAt: child.record.expiresAt, successorSealed: null }, successor, await proof(session), now);
        }
      }
    }
    return this.reuse(app, session, now);
  }

  // ── shared by both ─────────────────────────────────────────────────────────────────────────────

  /** A consumed token came back inside its window, binding permitting. */
  private inGrace(app: App, session: Session, consumedAt: Millis, client: ClientContext, now: Millis): boolean {
    const grace = app.policy.reuseGrace * 1000;
    // A clock up to the nbf leeway behind the consuming one's (another instance, F-11) still sees a retry, not reuse.
    const inWindow = grace > 0 && now - consumedAt < grace && now + NBF_LEEWAY_SECONDS * 1000 >= consumedAt;
    const bindingOk = app.policy.binding !== 'useragent' || (client.userAgent ?? null) === session.userAgent;
    return inWindow && bindingOk;
  }

  /** The live generation's token again: recomputed (opaque) or unsealed (JWT); null if not kept. */
  private liveToken(app: App, session: Session, chain: RefreshChain): string | null {
    if (formatFor(app.profile).refreshFormat === 'opaque') return this.ids.opaque(session.id, chain.generation);
    if (!chain.successorSealed) return null;
    return this.deps.masterKey.open('refresh-successor', chain.successorSealed, `${session.id}:${chain.generation}`).toString();
  }

  /** The answer to a grace retry: the same successor, a fresh access token. */
  private async retried(app: App, found: FoundSession, chain: RefreshChain, successor: string, jkt: string | null, now: Millis): Promise<Issued> {
    const { session } = found;
    const format = formatFor(app.profile);
    const key = await this.deps.keyring.activeKey(app, found.keysVersion);
    const accessExp = this.accessExp(app, session, now);
    const refresh = { notBefore: toSeconds(chain.notBefore), exp: toSeconds(chain.expiresAt), id: this.chainIdOf(app, format, session, chain) };
    const ctx = this.mintContext(app, session, now, accessExp, refresh, jkt ?? session.dpopJkt);
    this.deps.observer.refresh('retry', 'grace', app.id);
    const refreshPayload = format.refreshFormat === 'jwt' ? decodeJwt(successor)?.payload ?? null : null;
    const issued = this.finish(app, session, key, ctx, format, { token: successor, payload: refreshPayload }, now);
    issued.refreshExpiresIn = Math.max(0, toSeconds(chain.expiresAt - now));
    return issued;
  }

  private async reuse(app: App, session: Session, now: Millis): Promise<never> {
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
    // A dialect renewal carries no proof: a bound session, or an app that requires proofs, is not renewable there.
    if (session.dpopJkt !== null || app.policy.dpop === 'required') throw invalidAccessToken('invalid');
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
    const ctx = this.mintContext(app, session, now, accessExp, null, null);
    return this.finish(app, { ...session, lastRenewedAt: now }, key, ctx, format, null, now);
  }

  /** The session's live refresh token as JWTPlus get-session lists it, or null. */
  async liveRefreshOf(app: App, session: Session): Promise<LiveRefresh | null> {
    const chain = session.refresh;
    if (chain) return { id: this.chainIdOf(app, formatFor(app.profile), session, chain), issuedAt: chain.issuedAt, notBefore: chain.notBefore, expiresAt: chain.expiresAt };
    return this.deps.store.findLiveLegacyRefresh(session.id);
  }

  // ── finding a presented refresh token ──────────────────────────────────────────────────────────

  /**
   * The session (and generation) or pre-upgrade record a presented refresh token names, after checking
   * its form: an opaque token's MAC, a JWT's signature against the cached keys, then that key against
   * the version read with the row (S2-13). A guess never reaches the store. Null: not one of Rotor's.
   */
  private async locate(token: unknown, client: App | undefined, options: { revocable?: boolean }): Promise<Located | null> {
    if (typeof token !== 'string' || token.length === 0) throw invalidRefreshToken('malformed');
    let presented: Presented | null;
    let kid: string | null = null;
    if (token.startsWith('rt_')) {
      presented = this.ids.readOpaque(token);
      if (!presented) return null;
    } else {
      // Expiry is judged from the stored chain (the same instant as the JWT's `exp`), so allow it here.
      const verified = await this.verifyJwt(token, client, { allowExpired: true, revocable: options.revocable });
      if (!verified) throw invalidRefreshToken('malformed');
      const format = formatFor(verified.app.profile);
      const ref = format.refreshFormat === 'jwt' && format.chainId ? format.refreshIdOf(verified.parts) : null;
      if (!ref || !format.chainId) throw invalidRefreshToken('malformed');
      presented = this.ids.readChainId(verified.app.profile, format.chainId, ref.id, ref.sessionId);
      kid = verified.kid;
      // An id that names no session under this key is a pre-upgrade record's.
      if (presented.kind === 'chain') {
        const found = await this.findChain(presented);
        if (found && found.session.appId === verified.app.id) return this.confirmed({ kind: 'chain', found, generation: presented.generation, kid });
        presented = { kind: 'legacy', id: ref.id };
      }
    }
    if (presented.kind === 'chain') {
      const found = await this.findChain(presented);
      return found && { kind: 'chain', found, generation: presented.generation, kid };
    }
    const legacy = await this.deps.store.findLegacyRefresh(presented.id);
    return legacy && this.confirmed({ kind: 'legacy', found: legacy, kid });
  }

  private findChain(presented: Extract<Presented, { kind: 'chain' }>): Promise<FoundSession | null> {
    return 'id' in presented.session
      ? this.deps.store.findSession(presented.session.id)
      : this.deps.store.findSessionByLocator(presented.session.locator);
  }

  /** A JWT refresh token's key must still be usable as of the version read with its row (S2-13). */
  private async confirmed(located: Located): Promise<Located | null> {
    if (located.kid === null) return located;
    const ok = await this.deps.keyring.stillVerifies(located.found.session.appId, located.kid, located.found.keysVersion);
    return ok ? located : null;
  }

  /** Whether a located token is its session's live refresh token now. */
  private isLive(located: Located, now: Millis): { issuedAt: Millis; expiresAt: Millis } | null {
    if (located.kind === 'chain') {
      const chain = located.found.session.refresh;
      return chain && chain.generation === located.generation && now < chain.expiresAt ? chain : null;
    }
    const { record, session } = located.found;
    return record.consumedAt === null && session.refresh === null && now < record.expiresAt ? record : null;
  }

  /**
   * The app a presented refresh or access token belongs to, if it is genuine (signature, or a known
   * opaque token), without consuming or changing anything; null otherwise. For checks that must come
   * before a refresh is attempted, such as a browser origin allowed per app (SPEC §2.11).
   */
  async appOfToken(token: unknown): Promise<App | null> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return null;
    try {
      const located = await this.locate(token, undefined, { revocable: true });
      if (located) return this.deps.apps.byId(located.found.session.appId);
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
      const located = await this.locate(token, client, {});
      const live = located && located.found.session.appId === client.id ? this.isLive(located, now) : null;
      if (located && live) {
        const { session, subjectStatus } = located.found;
        this.assertSessionAlive(client, session, subjectStatus, now);
        return {
          active: true, tokenType: 'refresh_token', sub: session.subject, sid: session.id,
          exp: toSeconds(live.expiresAt), iat: toSeconds(live.issuedAt), claims: session.claims,
          ...(session.dpopJkt !== null ? { cnfJkt: session.dpopJkt } : {}),
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
      const cnf = access.payload.cnf as { jkt?: unknown } | undefined;
      return {
        active: true, tokenType: 'access_token', sub: access.session.subject, sid: access.session.id,
        exp: numericDate(access.payload.exp) ?? undefined, iat: numericDate(access.payload.iat) ?? undefined, claims,
        ...(typeof access.payload.iss === 'string' ? { iss: access.payload.iss } : {}),
        ...(access.payload.aud !== undefined ? { aud: access.payload.aud } : {}),
        ...(typeof cnf?.jkt === 'string' ? { cnfJkt: cnf.jkt } : {}),
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
    // store read returns (verifyAccess, confirmed), so no extra query is spent here.
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
    const expected = formatFor(app.profile).expectedIssuer(app, this.deps.issuer);
    const issuers = expected === null ? null : typeof expected === 'string' ? [expected] : expected;
    if (issuers !== null && !issuers.includes(decoded.payload.iss as string)) return null;
    return { app, kid, parts: { header: decoded.header, payload: decoded.payload }, decoded };
  }

  /** A genuine, unexpired access token whose session is alive; otherwise `invalid_access_token`. */
  async verifyAccess(token: unknown, options: {
    client?: App; allowExpired?: boolean; profile?: App['profile'];
    /** Only the newest pair of its session (JWTPlus verify: a renew deletes the superseded pair's row). */
    newestPair?: boolean;
  } = {}): Promise<VerifiedAccess> {
    if (typeof token !== 'string' || token.length === 0) throw invalidAccessToken('malformed');
    const verified = await this.verifyJwt(token, options.client, { allowExpired: options.allowExpired ?? false });
    if (!verified) throw invalidAccessToken('invalid');
    const { app, parts } = verified;
    if (options.profile && app.profile !== options.profile) throw invalidAccessToken('invalid');
    const format = formatFor(app.profile);
    if (!format.isAccessToken(parts)) throw invalidAccessToken('invalid');
    const found = await this.sessionOf(app, format, parts.payload, options.newestPair === true);
    if (!found) throw invalidAccessToken('revoked');
    if (!(await this.deps.keyring.stillVerifies(app.id, verified.kid, found.keysVersion))) throw invalidAccessToken('invalid');
    return { app, session: found.session, payload: parts.payload, header: parts.header, keysVersion: found.keysVersion };
  }

  private async sessionOf(app: App, format: TokenFormat, payload: JsonObject, newestPair: boolean): Promise<FoundSession | null> {
    const locator = format.sessionOf(payload);
    if (!locator) return null;
    let found: FoundSession | null;
    if ('sessionId' in locator) {
      found = await this.deps.store.findSession(locator.sessionId);
    } else {
      const presented = format.chainId ? this.ids.readChainId(app.profile, format.chainId, locator.chainId, null) : null;
      found = presented?.kind === 'chain' ? await this.findChain(presented) : null;
      if (found && presented?.kind === 'chain' && newestPair && presented.generation !== found.session.refresh?.generation) return null;
      // A pre-upgrade pair finds its session through its record (newest: while the chain has not started).
      if (!found) {
        const legacy = await this.deps.store.findLegacyRefresh(locator.chainId);
        found = legacy && (!newestPair || (legacy.record.consumedAt === null && legacy.session.refresh === null)) ? legacy : null;
      }
    }
    if (!found || found.session.appId !== app.id) return null;
    if (typeof payload.sub === 'string' && payload.sub !== found.session.subject) return null;
    try {
      this.assertSessionAlive(app, found.session, found.subjectStatus, this.nowMs());
    } catch {
      return null;
    }
    if (found.session.audience !== null && payload.aud !== undefined && payload.aud !== found.session.audience) return null;
    return found;
  }

  /**
   * RFC 7009 semantics: revokes the session of a valid refresh or access token; anything else is
   * silently ignored. Store failures still throw (a revocation is never falsely confirmed).
   */
  async revokeToken(token: unknown, client?: App): Promise<{ revoked: boolean }> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return { revoked: false };
    let session: Session | null = null;
    try {
      // Revocable from the moment it was issued: its not-before delay limits renewal, not logout (S2-03).
      const located = await this.locate(token, client, { revocable: true });
      const unexpired = located && (located.kind === 'chain'
        ? located.found.session.refresh !== null && this.nowMs() < located.found.session.refresh.expiresAt
        : this.nowMs() < located.found.record.expiresAt);
      if (located && unexpired && (!client || located.found.session.appId === client.id)) session = located.found.session;
    } catch (err) {
      if (!(err instanceof RotorError) || err.code === 'store_unavailable') throw err;
    }
    if (!session) {
      try {
        session = (await this.verifyAccess(token, { client })).session;
      } catch (err) {
        if (!(err instanceof RotorError) || err.code === 'store_unavailable') throw err;
      }
    }
    if (!session) return { revoked: false };
    return { revoked: await this.revokeSession(session.id, 'revoked', session.appId) };
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

  /**
   * Without a not-before delay there is nothing to wait for: a clock behind the issuer's (another
   * instance's, or after a step back) must not refuse a fresh token (SECURITY-CASES F-10, F-11). A peer
   * that renews only once `nbf < now` in whole seconds (JWTPlus) keeps that rule.
   */
  private assertNotBefore(app: App, notBefore: Millis, now: Millis): void {
    if (app.policy.refreshNotBefore <= 0) return;
    const early = formatFor(app.profile).strictNotBefore ? toSeconds(now) <= toSeconds(notBefore) : now < notBefore;
    if (early) throw invalidRefreshToken('not_yet_valid');
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

  /** Generation `generation` of a session's chain minted now, or null without refresh tokens. */
  private nextChain(app: App, session: Session, generation: number, now: Millis): RefreshChain | null {
    const ttl = app.policy.refreshTtl;
    if (ttl === null || formatFor(app.profile).refreshFormat === 'none') return null;
    let expiresAt = now + ttl * 1000;
    if (session.expiresAt !== null) expiresAt = Math.min(expiresAt, session.expiresAt);
    // Whole seconds, so that a JWT's `exp` and the stored expiry agree exactly.
    expiresAt = Math.floor(expiresAt / 1000) * 1000;
    const notBefore = Math.floor(now / 1000) * 1000 + app.policy.refreshNotBefore * 1000;
    return { generation, issuedAt: now, notBefore, expiresAt, successorSealed: null };
  }

  /** The chain id of `chain`'s generation (a ULID-shaped one has the generation's mint time as its time). */
  private chainIdOf(app: App, format: TokenFormat, session: Session, chain: RefreshChain): string {
    return format.chainId ? this.ids.chainId(app.profile, format.chainId, session, chain.generation, chain.issuedAt) : newId();
  }

  /**
   * The refresh token of `chain`'s generation, and the chain as stored: a JWT one sealed on it while its
   * parent may retry (opaque ones are recomputed instead).
   */
  private mintRefresh(
    app: App, format: TokenFormat, session: Session, chain: RefreshChain, key: SigningKey, now: Millis, accessExp: number, cnfJkt: string | null,
  ): { token: string; payload: JsonObject | null; chain: RefreshChain; ctx: MintContext } {
    const refresh = { notBefore: toSeconds(chain.notBefore), exp: toSeconds(chain.expiresAt), id: this.chainIdOf(app, format, session, chain) };
    const ctx = this.mintContext(app, session, now, accessExp, refresh, cnfJkt);
    if (format.refreshFormat === 'opaque') return { token: this.ids.opaque(session.id, chain.generation), payload: null, chain, ctx };
    const parts = format.refreshToken(ctx);
    if (!parts) throw new Error(`the ${app.profile} format issued no refresh token`);
    const token = signJwt(key, parts.payload, parts.header, parts.encoding);
    // Sealed where a parent may retry: inside a grace window, or after a rotation a store could leave unconfirmed.
    const sealed = (app.policy.reuseGrace > 0 || this.deps.store.confirmRotation !== undefined) && chain.generation > 1
      ? this.deps.masterKey.seal('refresh-successor', Buffer.from(token), `${session.id}:${chain.generation}`)
      : null;
    return { token, payload: parts.payload, chain: { ...chain, successorSealed: sealed }, ctx };
  }

  private mintContext(app: App, session: Session, now: Millis, accessExp: number, refresh: MintContext['refresh'], cnfJkt: string | null): MintContext {
    return { app, session, issuer: this.deps.issuer, now: toSeconds(now), accessExp, pairId: newId(now), refresh, cnfJkt };
  }

  private finish(
    app: App, session: Session, key: SigningKey, ctx: MintContext, format: TokenFormat,
    refresh: { token: string; payload: JsonObject | null } | null, now: Millis,
  ): Issued {
    const access = format.accessToken(ctx);
    return {
      app, session, key,
      accessToken: signJwt(key, access.payload, access.header, access.encoding),
      accessPayload: access.payload,
      expiresIn: Math.max(0, ctx.accessExp - toSeconds(now)),
      refreshToken: refresh?.token ?? null,
      refreshExpiresIn: ctx.refresh ? Math.max(0, ctx.refresh.exp - toSeconds(now)) : null,
      refreshPayload: refresh?.payload ?? null,
      tokenType: ctx.cnfJkt !== null && format.bindsAccessTokens ? 'DPoP' : 'Bearer',
      dpopNonce: null,
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
