import type { App } from '../types.js';
import type { TokenFormat } from './format.js';
import { withoutReserved } from './format.js';

/** Everything the RFC 9068 layout sets itself (SPEC §2.7): a caller's claims may set none of it. */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid', 'client_id', 'cnf']);

/** SPEC §1: every app is its own issuer, so a token of one app never passes a verifier set up for another. */
export const appIssuer = (issuer: string, app: App): string => `${issuer}/apps/${app.id}`;

/**
 * SPEC §3 `native`: an RFC 9068 access token (`typ: at+jwt`; `iss` the app's issuer, `aud` the session's
 * audience, else the app's `audience` policy, else the app id, `client_id` the app id, `cnf.jkt` when
 * DPoP-bound) and an opaque refresh token.
 */
export const nativeFormat: TokenFormat = {
  reservedClaims: RESERVED,
  refreshFormat: 'opaque',
  chainId: null,
  bindsAccessTokens: true,
  accessToken(ctx) {
    const payload: Record<string, unknown> = {
      ...withoutReserved(ctx.session.claims, RESERVED),
      iss: appIssuer(ctx.issuer, ctx.app),
      sub: ctx.session.subject,
      aud: ctx.session.audience ?? ctx.app.policy.audience ?? ctx.app.id,
      client_id: ctx.app.id,
      sid: ctx.session.id,
      jti: ctx.pairId,
      iat: ctx.now,
      nbf: ctx.now,
      exp: ctx.accessExp,
    };
    if (ctx.cnfJkt !== null) payload.cnf = { jkt: ctx.cnfJkt };
    return { header: { typ: 'at+jwt' }, payload };
  },
  refreshToken: () => null,
  isAccessToken: ({ header, payload }) => header.typ === 'at+jwt' && typeof payload.sid === 'string',
  refreshIdOf: () => null,
  sessionOf: (payload) => (typeof payload.sid === 'string' ? { sessionId: payload.sid } : null),
  // Tokens minted before the per-app issuer carried the shared one; they live at most one accessTtl.
  expectedIssuer: (app, issuer) => [appIssuer(issuer, app), issuer],
};
