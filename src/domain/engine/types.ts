import type { SigningKey } from '../../crypto/signing_key.js';
import type { App, JsonObject, RefreshRecord, Session } from '../types.js';

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

/** Why an access token is not a live one: `invalid_access_token`'s reason at the HTTP edge. */
export type AccessRefusal = 'malformed' | 'invalid' | 'revoked';

/**
 * The verification of an access token: an expected refusal is a value, not an exception. Store
 * failures (and real faults) still throw.
 */
export type AccessCheck = { ok: true; access: VerifiedAccess } | { ok: false; reason: AccessRefusal };

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
  /**
   * Whether the client is gone (its connection closed). Asked just before the rotation is written, after
   * any wait (a proof's check, a busy event loop) that can outlast a client's timeout under load: a
   * refresh nobody will read the answer of consumes nothing, so its client's retry of the same token is
   * not taken for reuse.
   */
  abandoned?: () => boolean;
  /**
   * The caller's own condition on the session (OAuth: a requested scope within the granted one, RFC 6749
   * §6), checked after every check of the refresh itself (token, client, binding, DPoP proof) and before
   * anything is consumed or a retry answered; it throws a RotorError to refuse. Asked earlier, it would
   * tell whoever holds a token whether it is live without the key or proof the refresh needs.
   */
  precondition?: (session: Session) => void;
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

/** What `issue` starts a session with (claims already validated by the caller). */
export interface IssueInput {
  subject: string;
  claims: JsonObject;
  audience?: string | null;
  client?: ClientContext;
  /** Binds the session to this key's thumbprint (SPEC §4.1 `dpopJkt`). */
  dpopJkt?: string | null;
  /** Revoke the subject's other sessions in the same step. */
  revokeOthers?: string;
  accessTtl?: number;
}

export interface RenewAccessOptions {
  /** Overrides the policy's access-token lifetime (seconds). */
  accessTtl?: number;
  context?: ClientContext;
}

export interface CheckAccessOptions {
  client?: App;
  allowExpired?: boolean;
  profile?: App['profile'];
  /** Only the newest pair of its session (JWTPlus verify: a renew deletes the superseded pair's row). */
  newestPair?: boolean;
}

/** The live refresh token of a session as JWTPlus get-session shows it. */
export type LiveRefresh = Pick<RefreshRecord, 'id' | 'issuedAt' | 'notBefore' | 'expiresAt'>;
