import { createHash } from 'node:crypto';
import type { JsonObject } from '../types.js';
import type { TokenFormat } from './format.js';
import { withoutReserved } from './format.js';

/**
 * Claims Rotor sets on JWTPlus tokens. `sub` and `aud` come from the issuance body but are the
 * session's subject and audience; `type` is reserved so that no auth token can pass for a refresh token.
 */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid', 'jid', 'type']);

/** JWTPlus (Go, golang-jwt MapClaims) serialises claims with sorted keys; so do we. */
function sorted(payload: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const key of Object.keys(payload).sort()) out[key] = payload[key];
  return out;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * The `jid` of a session's pair issued at `issuedAt` (ms): a ULID whose time part is that instant and
 * whose 80 other bits come from SHA-256 of the session id and the instant. Unique per issuance and
 * renewal (a session renews at most once per instant: each renewal consumes its parent), and
 * derivable from the session alone, so `get-session` can name each session's live pair exactly
 * without the store keeping a second index. The jid is an identifier, not a secret: tokens are
 * signed, and a record is looked up only after its token's signature verified.
 */
export function jwtplusPairId(sessionId: string, issuedAt: number): string {
  let out = '';
  let time = Math.floor(issuedAt);
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[time % 32] + out;
    time = Math.floor(time / 32);
  }
  const digest = createHash('sha256').update(`jwtplus-jid\0${sessionId}\0${issuedAt}`).digest();
  let bits = 0;
  let value = 0;
  for (let i = 0; out.length < 26; ) {
    if (bits < 5) {
      value = (value << 8) | (digest[i++] as number);
      bits += 8;
    }
    bits -= 5;
    out += CROCKFORD[(value >> bits) & 31];
    value &= (1 << bits) - 1;
  }
  return out;
}

/**
 * SPEC §3 `jwtplus`: the auth token carries the issuance body (`sub aud ip useragent` + custom claims)
 * plus `jid iat nbf exp iss` (iss = the app's name); the refresh token is a JWT with
 * `exp iat iss jid nbf type:"refresh"`. Both tokens of a pair share one `jid`, a new ULID per
 * issuance and renewal (see `jwtplusPairId`), and the refresh record is stored under that `jid`: the
 * auth token's `jid` therefore also locates its session.
 */
export const jwtplusFormat: TokenFormat = {
  reservedClaims: RESERVED,
  refreshFormat: 'jwt',
  refreshRecordId: ({ pairId, sessionId, issuedAt }) =>
    sessionId !== undefined && issuedAt !== undefined ? jwtplusPairId(sessionId, issuedAt) : pairId,
  accessToken(ctx) {
    // The pair's jid is the refresh record's id.
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
    return { header: { typ: 'JWT' }, payload: sorted(payload) };
  },
  refreshToken(ctx) {
    if (!ctx.refresh) return null;
    return {
      header: { typ: 'JWT' },
      payload: sorted({
        jid: ctx.refresh.id,
        iat: ctx.now,
        nbf: ctx.refresh.notBefore,
        exp: ctx.refresh.exp,
        iss: ctx.app.name,
        type: 'refresh',
      }),
    };
  },
  isAccessToken: ({ payload }) => typeof payload.jid === 'string' && !('type' in payload),
  refreshIdOf: ({ payload }) => (payload.type === 'refresh' && typeof payload.jid === 'string' ? payload.jid : null),
  sessionOf: (payload) => (typeof payload.jid === 'string' ? { refreshId: payload.jid } : null),
  expectedIssuer: (app) => app.name,
};
