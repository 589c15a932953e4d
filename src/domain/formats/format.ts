import type { App, JsonObject, Session } from '../types.js';

/** Everything a profile needs to lay out one issuance or renewal. Times are in seconds. */
export interface MintContext {
  app: App;
  session: Session;
  issuer: string;
  now: number;
  /** Access token expiry (already capped by the session's absolute lifetime). */
  accessExp: number;
  /** A fresh id shared by the pair where a profile pairs them (JWTPlus `jid`, FIB `acjti`). */
  pairId: string;
  /** The refresh token's timing, when the profile issues one. */
  refresh: { notBefore: number; exp: number; id: string } | null;
}

export interface JwtParts {
  header: JsonObject;
  payload: JsonObject;
}

/** Where a verified access token says its session is: by id, or through its refresh record. */
export type SessionLocator = { sessionId: string } | { refreshId: string };

/**
 * How one profile lays out its tokens. A profile is pure data-shaping: no storage, no keys, no HTTP.
 * The engine signs what it returns and stores what it names.
 */
export interface TokenFormat {
  /** Claims a caller may never set: the engine's own and the profile's bookkeeping claims. */
  readonly reservedClaims: ReadonlySet<string>;
  /** `opaque` refresh tokens are random strings stored by hash; `jwt` ones are stored by their id. */
  readonly refreshFormat: 'opaque' | 'jwt' | 'none';
  /** The id under which the refresh record of this issuance is stored (JWT profiles choose it). */
  refreshRecordId(ctx: { pairId: string; refreshJti: string }): string;
  accessToken(ctx: MintContext): JwtParts;
  /** Only for `jwt` refresh formats. */
  refreshToken(ctx: MintContext): JwtParts | null;
  /** Whether a verified JWT is this profile's access token (and not, say, its refresh token). */
  isAccessToken(parts: JwtParts): boolean;
  /** Whether a verified JWT is this profile's refresh token; returns its record id. */
  refreshIdOf(parts: JwtParts): string | null;
  sessionOf(accessPayload: JsonObject): SessionLocator | null;
  /** The issuer a token of this app must carry (checked on verification), or null for none. */
  expectedIssuer(app: App, issuer: string): string | null;
}

export function withoutReserved(claims: JsonObject, reserved: ReadonlySet<string>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(claims)) if (!reserved.has(k)) out[k] = v;
  return out;
}
