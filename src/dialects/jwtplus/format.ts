import type { JsonObject } from '../../domain/types.js';
import type { TokenFormat } from '../../domain/formats/format.js';
import { withoutReserved } from '../../domain/formats/format.js';
import { goJson } from './go_json.js';

/**
 * Claims JWTPlus's own layout writes (lib/libJWT.go:101-117): `jid iat nbf exp iss`, and `type` on the
 * refresh token, reserved so that no auth token can pass for a refresh token. `sub` and `aud` come from
 * the issuance body but are the session's subject and audience. Every other name (`sid`, `jti`…) is the
 * caller's: the session is found by `jid` alone.
 */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jid', 'type']);

/**
 * JWTPlus builds its tokens from Go maps (golang-jwt MapClaims, and its Header map): encoding/json sorts
 * the keys at every depth (so the header reads `alg`, `kid`, `typ`) and escapes `<`, `>`, `&`.
 */
const GO_ENCODING = { json: goJson };

/**
 * SPEC §3 `jwtplus`: the auth token carries the issuance body (`sub aud ip useragent` + custom claims)
 * plus `jid iat nbf exp iss` (iss = the app's name); the refresh token is a JWT with
 * `exp iat iss jid nbf type:"refresh"`. Both tokens of a pair share one `jid`, a new ULID-shaped id
 * per issuance and renewal: the session's locator and the generation, sealed (SPEC §2.9), so the auth
 * token's `jid` also locates its session, and tells whether it is the newest pair.
 */
export const jwtplusFormat: TokenFormat = {
  reservedClaims: RESERVED,
  refreshFormat: 'jwt',
  // The refresh token names no session: its jid, a ULID, carries it (sealed with the generation).
  chainId: { shape: 'ulid', locatesSession: true },
  strictNotBefore: true,
  accessToken(ctx) {
    // The pair shares the chain id as its jid.
    const jid = ctx.refresh?.id ?? ctx.pairId;
    const payload: JsonObject = {
      ...withoutReserved(ctx.session.claims, RESERVED),
      sub: ctx.session.subject,
      jid,
      iat: ctx.now,
      nbf: ctx.now,
      exp: ctx.accessExp,
      iss: ctx.app.name,
    };
    if (ctx.session.audience !== null) payload.aud = ctx.session.audience;
    return { header: { typ: 'JWT' }, payload, encoding: GO_ENCODING };
  },
  refreshToken(ctx) {
    if (!ctx.refresh) return null;
    return {
      header: { typ: 'JWT' },
      payload: { jid: ctx.refresh.id, iat: ctx.now, nbf: ctx.refresh.notBefore, exp: ctx.refresh.exp, iss: ctx.app.name, type: 'refresh' },
      encoding: GO_ENCODING,
    };
  },
  isAccessToken: ({ payload }) => typeof payload.jid === 'string' && !('type' in payload),
  refreshIdOf: ({ payload }) => (payload.type === 'refresh' && typeof payload.jid === 'string' ? { id: payload.jid, sessionId: null } : null),
  sessionOf: (payload) => (typeof payload.jid === 'string' ? { chainId: payload.jid } : null),
  expectedIssuer: (app) => app.name,
};
