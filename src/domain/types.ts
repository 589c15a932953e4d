import type { Algorithm, Policy, Profile } from './policy.js';

/** Times are milliseconds since the epoch throughout the domain and the stores. */
export type Millis = number;

export type { JsonObject } from '../crypto/types.js';
import type { JsonObject } from '../crypto/types.js';

export interface App {
  id: string;
  name: string;
  profile: Profile;
  public: boolean;
  policy: Policy;
  createdAt: Millis;
  updatedAt: Millis;
  description: string;
}

export interface AppKeyRecord {
  id: string;
  appId: string;
  /** SHA-256 of the secret part; the key itself is shown once and never stored. */
  secretHash: Buffer;
  createdAt: Millis;
  revokedAt: Millis | null;
}

export type SigningKeyState = 'active' | 'retiring' | 'revoked';

export interface SigningKeyRecord {
  kid: string;
  appId: string;
  alg: Algorithm;
  state: SigningKeyState;
  /** Public JWK for asymmetric keys; null for HMAC keys, which are never published. */
  publicJwk: JsonObject | null;
  /** Private key (PKCS#8 DER) or HMAC secret, sealed with the master key. */
  privateSealed: Buffer;
  createdAt: Millis;
  retiredAt: Millis | null;
  /** A retiring key is published and accepted until then; after it, nothing it signed is alive. */
  publishUntil: Millis | null;
  revokedAt: Millis | null;
}

export type SubjectStatus = 'active' | 'disabled';

export interface Subject {
  appId: string;
  subject: string;
  claims: JsonObject;
  status: SubjectStatus;
  passwordHash: string | null;
  ed25519PublicKey: string | null;
  createdAt: Millis;
  updatedAt: Millis;
}

export interface Session {
  id: string;
  appId: string;
  subject: string;
  claims: JsonObject;
  audience: string | null;
  createdAt: Millis;
  lastRenewedAt: Millis;
  /** Absolute end of the session (sessionMaxAge); rotation never moves it. */
  expiresAt: Millis | null;
  ip: string | null;
  userAgent: string | null;
  lastIp: string | null;
  lastUserAgent: string | null;
  revokedAt: Millis | null;
  revokeReason: string | null;
  /** When the last token of this session expires: after it (or after revocation) the row can be pruned. */
  horizonAt: Millis;
  /**
   * The session's refresh chain (SPEC §2.9): all the refresh-token state it has, one row however often
   * it rotated. Null for profiles without refresh tokens, and for a session issued before the upgrade
   * whose live token is still a pre-upgrade record (docs/architecture.md "Upgrading").
   */
  refresh: RefreshChain | null;
  /**
   * 64 random bits (hex) for profiles whose refresh-token ids name no session (jwtplus, fib): the id
   * carries it, encrypted, and the store finds the session by it. Null for the others.
   */
  locator: string | null;
  /**
   * The RFC 7638 thumbprint of the key the session is bound to (DPoP, SPEC §2.10): every refresh of it
   * needs a proof by that key. Null: unbound.
   */
  dpopJkt: string | null;
}

/**
 * The live generation of a session's refresh chain. Generation g's token is the live one; g − 1 is its
 * parent, consumed at `issuedAt` (a grace retry of it gets g's token again); anything older, presented,
 * is reuse. No token is stored: opaque tokens are MACs over (session, generation), JWT ones carry the
 * generation in their encrypted id.
 */
export interface RefreshChain {
  generation: number;
  /** When generation `generation` was minted (its parent consumed, for a rotation). */
  issuedAt: Millis;
  notBefore: Millis;
  expiresAt: Millis;
  /** The live JWT refresh token sealed under the master key, for grace retries of its parent (JWT profiles with grace). */
  successorSealed: Buffer | null;
}

/**
 * A refresh token issued before the one-row-per-session upgrade (one row per generation). No new ones are
 * written; those that exist are honoured until they expire. `id` is a hash of an opaque token, or a JWT's id.
 */
export interface RefreshRecord {
  id: string;
  sessionId: string;
  appId: string;
  parentId: string | null;
  issuedAt: Millis;
  notBefore: Millis;
  expiresAt: Millis;
  consumedAt: Millis | null;
  successorId: string | null;
  /** The successor token sealed under the master key, kept only for the grace window. */
  successorSealed: Buffer | null;
}
