import type { JwtEncoding } from '../../crypto/jwt.js';
import type { App, JsonObject, Session } from '../types.js';

/** Everything a profile needs to lay out one issuance or renewal. Times are in seconds. */
export interface MintContext {
  app: App;
  session: Session;
  issuer: string;
  now: number;
  /** Access token expiry (already capped by the session's absolute lifetime). */
  accessExp: number;
  /** A fresh random id for the access token's `jti` where the layout has one of its own. */
  pairId: string;
  /**
   * The refresh token being minted, when the profile issues one: its timing and, for JWT formats, its
   * chain id (the generation, sealed; see `chainId`), which paired layouts share with the access token.
   */
  refresh: { notBefore: number; exp: number; id: string } | null;
  /** The DPoP key the access token is bound to (`cnf.jkt`, RFC 9449 §6), where the layout has room for it. */
  cnfJkt: string | null;
}

export interface JwtParts {
  header: JsonObject;
  payload: JsonObject;
  /** The peer's byte layout, where it differs from Rotor's (header order, JSON encoder). */
  encoding?: JwtEncoding;
}

/** Where a verified access token says its session is: by id, or through its pair's chain id. */
export type SessionLocator = { sessionId: string } | { chainId: string };

/**
 * How a JWT refresh format names the generation (SPEC §2.9): an id of the layout's own shape that the
 * engine seals. `locatesSession`: the layout has no session claim, so the id carries the session too.
 */
export interface ChainIdLayout {
  shape: 'ulid' | 'uuid';
  locatesSession: boolean;
}

/**
 * How one profile lays out its tokens. A profile is pure data-shaping: no storage, no keys, no HTTP.
 * The engine signs what it returns and stores what it names.
 */
export interface TokenFormat {
  /** Claims a caller may never set: the engine's own and the profile's bookkeeping claims. */
  readonly reservedClaims: ReadonlySet<string>;
  /** `opaque` refresh tokens are MACs over (session, generation); `jwt` ones carry a chain id. */
  readonly refreshFormat: 'opaque' | 'jwt' | 'none';
  /** For `jwt` refresh formats: the shape of the id that carries the generation. */
  readonly chainId: ChainIdLayout | null;
  /** The peer renews only once `nbf < now`, in whole seconds (JWTPlus), not from `nbf` on. */
  readonly strictNotBefore?: boolean;
  /** The access token carries `cnf.jkt` when bound (RFC 9449 §6): native only; a dialect's layout has no room. */
  readonly bindsAccessTokens?: boolean;
  accessToken(ctx: MintContext): JwtParts;
  /** Only for `jwt` refresh formats. */
  refreshToken(ctx: MintContext): JwtParts | null;
  /** Whether a verified JWT is this profile's access token (and not, say, its refresh token). */
  isAccessToken(parts: JwtParts): boolean;
  /** Whether a verified JWT is this profile's refresh token: its chain id, and its session claim if it has one. */
  refreshIdOf(parts: JwtParts): { id: string; sessionId: string | null } | null;
  sessionOf(accessPayload: JsonObject): SessionLocator | null;
  /** The issuer a token of this app must carry (checked on verification), or null for none. */
  expectedIssuer(app: App, issuer: string): string | readonly string[] | null;
}

export function withoutReserved(claims: JsonObject, reserved: ReadonlySet<string>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(claims)) if (!reserved.has(k)) out[k] = v;
  return out;
}
