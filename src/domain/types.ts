import type { Algorithm, Policy, Profile } from './policy.js';

/** Times are milliseconds since the epoch throughout the domain and the stores. */
export type Millis = number;

export type JsonObject = Record<string, unknown>;

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
}

/** One generation of a session's refresh-token chain. `id` is a hash of an opaque token, or a JWT's id. */
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
