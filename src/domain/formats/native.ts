import type { TokenFormat } from './format.js';
import { withoutReserved } from './format.js';

const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid']);

/** SPEC §3 `native`: an RFC 9068 style access token (`typ: at+jwt`) and an opaque refresh token. */
export const nativeFormat: TokenFormat = {
  reservedClaims: RESERVED,
  refreshFormat: 'opaque',
  chainId: null,
  accessToken(ctx) {
    const payload: Record<string, unknown> = {
      ...withoutReserved(ctx.session.claims, RESERVED),
      iss: ctx.issuer,
      sub: ctx.session.subject,
      sid: ctx.session.id,
      jti: ctx.pairId,
      iat: ctx.now,
      nbf: ctx.now,
      exp: ctx.accessExp,
    };
    if (ctx.session.audience !== null) payload.aud = ctx.session.audience;
    return { header: { typ: 'at+jwt' }, payload };
  },
  refreshToken: () => null,
  isAccessToken: ({ header, payload }) => header.typ === 'at+jwt' && typeof payload.sid === 'string',
  refreshIdOf: () => null,
  sessionOf: (payload) => (typeof payload.sid === 'string' ? { sessionId: payload.sid } : null),
  expectedIssuer: (_app, issuer) => issuer,
};
