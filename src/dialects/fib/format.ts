import { randomUUID } from 'node:crypto';
import type { TokenFormat } from '../../domain/formats/format.js';
import { withoutReserved } from '../../domain/formats/format.js';

const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid', 'acjti']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** FIB's sample tokens' header: `{"typ":"JWT","alg":"EdDSA"}` (fil-documentation auth-controller), plus `kid`. */
const FIB_ENCODING = { header: (alg: string, kid: string) => ({ typ: 'JWT', alg, kid }) };

const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value);

/**
 * SPEC §3 `fib`: EdDSA; the access token is `acc sub role exp jti` (a UUID; `acc` and `role` are the
 * subject's claims), the refresh token `sub acjti exp jti` where `acjti` is the access token's `jti`.
 *
 * That shared id is the pair's chain id (the session's locator and the generation, sealed, rendered as
 * a UUID), so the access token, which names no session, finds its session through it.
 */
export const fibFormat: TokenFormat = {
  reservedClaims: RESERVED,
  refreshFormat: 'jwt',
  // Neither token names a session: the shared id (access `jti` = refresh `acjti`) carries it.
  chainId: { shape: 'uuid', locatesSession: true },
  accessToken(ctx) {
    // FIB's layout is fixed: of the subject's claims only `acc` and `role` have a place in it.
    const { acc, role } = withoutReserved(ctx.session.claims, RESERVED);
    const payload: Record<string, unknown> = {};
    if (acc !== undefined) payload.acc = acc;
    payload.sub = ctx.session.subject;
    if (role !== undefined) payload.role = role;
    payload.exp = ctx.accessExp;
    // Without a refresh token (a policy with refreshTtl off) there is no record to share an id with.
    payload.jti = ctx.refresh?.id ?? randomUUID();
    return { header: {}, payload, encoding: FIB_ENCODING };
  },
  refreshToken(ctx) {
    if (!ctx.refresh) return null;
    return {
      header: {},
      payload: { sub: ctx.session.subject, acjti: ctx.refresh.id, exp: ctx.refresh.exp, jti: randomUUID() },
      encoding: FIB_ENCODING,
    };
  },
  isAccessToken: ({ payload }) => !('acjti' in payload) && typeof payload.sub === 'string' && isUuid(payload.jti),
  refreshIdOf: ({ payload }) =>
    typeof payload.sub === 'string' && isUuid(payload.acjti) && isUuid(payload.jti) ? { id: payload.acjti, sessionId: null } : null,
  sessionOf: (payload) => (isUuid(payload.jti) ? { chainId: payload.jti } : null),
  expectedIssuer: () => null,
};
