import type { TokenFormat } from '../domain/formats/format.js';
import { withoutReserved } from '../domain/formats/format.js';

/** `typ` is reserved too: it is what tells a refresh token from an access token. */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid', 'typ']);

/**
 * The HS256 layout floLIVE and Abitmedia share: the access token is the subject's claims plus
 * `[sub] sid jti iat exp`; the refresh token a JWT `[sub] sid jti iat exp typ:<refreshTyp>` whose `jti`
 * carries its generation, sealed, and whose `sid` names the session. They differ only in whether `sub`
 * is carried and in how the refresh `typ` is spelled (each vendor's own byte order is kept).
 */
export function sidJtiFormat(options: { withSub: boolean; refreshTyp: string }): TokenFormat {
  const sub = (subject: string) => (options.withSub ? { sub: subject } : {});
  return {
    reservedClaims: RESERVED,
    refreshFormat: 'jwt',
    chainId: { shape: 'ulid', locatesSession: false },
    accessToken(ctx) {
      return {
        header: { typ: 'JWT' },
        payload: {
          ...withoutReserved(ctx.session.claims, RESERVED),
          ...sub(ctx.session.subject), sid: ctx.session.id, jti: ctx.pairId, iat: ctx.now, exp: ctx.accessExp,
        },
      };
    },
    refreshToken(ctx) {
      if (!ctx.refresh) return null;
      return {
        header: { typ: 'JWT' },
        payload: { ...sub(ctx.session.subject), sid: ctx.session.id, jti: ctx.refresh.id, iat: ctx.now, exp: ctx.refresh.exp, typ: options.refreshTyp },
      };
    },
    isAccessToken: ({ payload }) =>
      !('typ' in payload) && (!options.withSub || typeof payload.sub === 'string') && typeof payload.sid === 'string' && typeof payload.jti === 'string',
    refreshIdOf: ({ payload }) =>
      payload.typ === options.refreshTyp && typeof payload.sid === 'string' && typeof payload.jti === 'string' ? { id: payload.jti, sessionId: payload.sid } : null,
    sessionOf: (payload) => (typeof payload.sid === 'string' ? { sessionId: payload.sid } : null),
    expectedIssuer: () => null,
  };
}
