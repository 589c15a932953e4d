import type { TokenFormat } from '../../domain/formats/format.js';
import { withoutReserved } from '../../domain/formats/format.js';

const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid']);

/**
 * SPEC §3 `verifik`: one long-lived access token (`iss sub sid jti iat exp` + subject claims), no
 * refresh token. Renewal presents the access token itself, so the token names its session (`sid`).
 */
export const verifikFormat: TokenFormat = {
  reservedClaims: RESERVED,
  refreshFormat: 'none',
  chainId: null,
  accessToken(ctx) {
    const payload: Record<string, unknown> = {
      ...withoutReserved(ctx.session.claims, RESERVED),
      iss: ctx.issuer,
      sub: ctx.session.subject,
      sid: ctx.session.id,
      jti: ctx.pairId,
      iat: ctx.now,
      exp: ctx.accessExp,
    };
    if (ctx.session.audience !== null) payload.aud = ctx.session.audience;
    return { header: { typ: 'JWT' }, payload };
  },
  refreshToken: () => null,
  isAccessToken: ({ header, payload }) =>
    header.typ === 'JWT' && typeof payload.sid === 'string' && typeof payload.jti === 'string',
  refreshIdOf: () => null,
  sessionOf: (payload) => (typeof payload.sid === 'string' ? { sessionId: payload.sid } : null),
  expectedIssuer: (_app, issuer) => issuer,
};
