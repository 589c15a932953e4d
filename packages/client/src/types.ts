/** The public shapes of @rotor/client (re-exported by rotor-client.ts, the package's one entry point). */

export interface TokenPair {
  accessToken: string;
  tokenType?: string;
  expiresIn: number;
  refreshToken?: string | null;
  refreshExpiresIn?: number | null;
  sessionId?: string;
}

/** Why a session ended: the server's reason (`reused`, `revoked`, `expired`, `subject_disabled`), `invalid` (an unknown, malformed or foreign token), or `signed_out` (signOut()). */
export type SignedOutReason = 'reused' | 'revoked' | 'expired' | 'subject_disabled' | 'invalid' | 'signed_out';

export type RotorEvent = { type: 'signed_in' } | { type: 'refreshed' } | { type: 'signed_out'; reason: SignedOutReason };

/** `localStorage` and anything shaped like it; the methods may also return promises (React Native's AsyncStorage). */
export interface StorageLike {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

export interface RotorClientOptions {
  /** The Rotor server, e.g. `https://auth.example.com`. */
  baseUrl: string;
  /** Names the storage entry, the cross-tab lock and the channel. Default `rotor`. */
  storageKey?: string;
  /** `local` (default in windows), `memory` (default elsewhere) or a Storage-like object. */
  storage?: 'local' | 'memory' | StorageLike;
  /** Refresh this long before the access token expires (at most half its lifetime). Default 30. */
  refreshMarginSeconds?: number;
  /**
   * Sender-constrained sessions (DPoP, RFC 9449): a non-extractable ES256 key (IndexedDB in browsers,
   * memory elsewhere) proves every refresh, and `fetch()` proves every request made with a DPoP token.
   * Needs WebCrypto (`crypto.subtle`: a secure context in browsers). Default false.
   */
  dpop?: boolean;
  /** Retries of a refresh after a transient failure (network, 5xx, 429). Default 3. */
  retries?: number;
  /** Each request to Rotor is abandoned after this long. Default 5000. */
  requestTimeoutMs?: number;
  /** A lock holder silent this long is presumed frozen and its lock is taken. Default 3000. */
  lockTimeoutMs?: number;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
}

export interface SessionInfo {
  sessionId: string | undefined;
  /** Epoch milliseconds, by this device's clock. */
  accessTokenExpiresAt: number;
  refreshTokenExpiresAt: number | null;
}

export interface RotorClient {
  /** Hands the client a TokenPair your backend got from `POST /v1/apps/{app}/sessions`; every tab sees it. */
  setSession(pair: TokenPair): Promise<void>;
  /** A valid access token, refreshed first when it is within the margin of its expiry. */
  getAccessToken(): Promise<string>;
  /**
   * fetch with `Authorization: Bearer <access token>` (or `DPoP <access token>` and a `DPoP` proof for a
   * DPoP-bound token); on a 401, refreshes once and retries once.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Called in every tab when the session is set, refreshed or ends. Returns the unsubscribe function. */
  onChange(listener: (event: RotorEvent) => void): () => void;
  /** Revokes the session at Rotor (best effort) and signs every tab out. */
  signOut(): Promise<void>;
  /** The session as stored, or null when there is none. */
  getSession(): Promise<SessionInfo | null>;
  /** The RFC 7638 thumbprint of this origin's DPoP key, for `dpopJkt` at issuance (needs `dpop: true`). */
  dpopJkt(): Promise<string>;
  /** Stops listening to other tabs (for tests and single-page-app teardown). */
  close(): void;
}

