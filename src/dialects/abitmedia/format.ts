import type { TokenFormat } from '../../domain/formats/format.js';
import { withoutReserved } from '../../domain/formats/format.js';

/** `typ` is reserved too: it is what tells a refresh token from an access token. */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid', 'typ']);

/**
 * SPEC §3 `abitmedia`: HS256; the access token is the subject's claims plus `sub sid jti iat exp`;
 * the refresh token is a JWT `sub sid jti iat exp typ:"refresh"` whose `jti` carries its generation.
 */
export const abitmediaFormat: TokenFormat = {
  reservedClaims: RESERVED,
  refreshFormat: 'jwt',
  // The refresh token's jti carries the generation, sealed; its sid claim names the session.
  chainId: { shape: 'ulid', locatesSession: false },
  accessToken(ctx) {
    return {
      header: { typ: 'JWT' },
      payload: {
        ...withoutReserved(ctx.session.claims, RESERVED),
        sub: ctx.session.subject,
        sid: ctx.session.id,
        jti: ctx.pairId,
        iat: ctx.now,
        exp: ctx.accessExp,
      },
    };
  },
  refreshToken(ctx) {
    if (!ctx.refresh) return null;
    return {
      header: { typ: 'JWT' },
      payload: {
        sub: ctx.session.subject, sid: ctx.session.id, jti: ctx.refresh.id, iat: ctx.now, exp: ctx.refresh.exp, typ: 'refresh',
      },
    };
  },
  isAccessToken: ({ payload }) =>
    !('typ' in payload) && typeof payload.sub === 'string' && typeof payload.sid === 'string' && typeof payload.jti === 'string',
  refreshIdOf: ({ payload }) =>
    payload.typ === 'refresh' && typeof payload.sid === 'string' && typeof payload.jti === 'string' ? { id: payload.jti, sessionId: payload.sid } : null,
  sessionOf: (payload) => (typeof payload.sid === 'string' ? { sessionId: payload.sid } : null),
  expectedIssuer: () => null,
};
