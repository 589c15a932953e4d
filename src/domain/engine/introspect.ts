import { MAX_TOKEN_LENGTH, numericDate } from '../../crypto/jwt.js';
import { toSeconds } from '../clock.js';
import type { App, JsonObject, Session } from '../types.js';
import type { EngineCore } from './core.js';
import { isLive, locate } from './locate.js';
import { chainIdOf } from './minting.js';
import { sessionRefusal } from './session_rules.js';
import type { Introspection, LiveRefresh } from './types.js';
import { checkAccess, verifyJwt } from './verify.js';

const inactive: Introspection = { active: false };

/** RFC 7662: what a token is, if it is alive and belongs to `client`; `{active:false}` otherwise. */
export async function introspect(core: EngineCore, token: unknown, client: App): Promise<Introspection> {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return { ...inactive };
  return (await asRefreshToken(core, token, client)) ?? (await asAccessToken(core, token, client)) ?? { ...inactive };
}

async function asRefreshToken(core: EngineCore, token: string, client: App): Promise<Introspection | null> {
  const now = core.now();
  const result = await locate(core, token, { client });
  if (!result.ok || result.located.found.session.appId !== client.id) return null;
  const live = isLive(result.located, now);
  const { session, subjectStatus } = result.located.found;
  if (!live || sessionRefusal(client, session, subjectStatus, now) !== null) return null;
  return {
    active: true, tokenType: 'refresh_token', sub: session.subject, sid: session.id,
    exp: toSeconds(live.expiresAt), iat: toSeconds(live.issuedAt), claims: session.claims,
    ...(session.dpopJkt !== null ? { cnfJkt: session.dpopJkt } : {}),
  };
}

async function asAccessToken(core: EngineCore, token: string, client: App): Promise<Introspection | null> {
  const check = await checkAccess(core, token, { client });
  if (!check.ok) return null;
  const { payload, session } = check.access;
  const reserved = core.formats.formatFor(client.profile).reservedClaims;
  const claims: JsonObject = {};
  for (const [k, v] of Object.entries(payload)) if (!reserved.has(k)) claims[k] = v;
  const cnf = payload.cnf as { jkt?: unknown } | undefined;
  return {
    active: true, tokenType: 'access_token', sub: session.subject, sid: session.id,
    exp: numericDate(payload.exp) ?? undefined, iat: numericDate(payload.iat) ?? undefined, claims,
    ...(typeof payload.iss === 'string' ? { iss: payload.iss } : {}),
    ...(payload.aud !== undefined ? { aud: payload.aud } : {}),
    ...(typeof cnf?.jkt === 'string' ? { cnfJkt: cnf.jkt } : {}),
  };
}

/**
 * The app a presented refresh or access token belongs to, if it is genuine (signature, or a known
 * opaque token), without consuming or changing anything; null otherwise. For checks that must come
 * before a refresh is attempted, such as a browser origin allowed per app (SPEC §2.11).
 */
export async function appOfToken(core: EngineCore, token: unknown): Promise<App | null> {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return null;
  const result = await locate(core, token, { earlyAllowed: true });
  if (result.ok) return core.apps.byId(result.located.found.session.appId);
  const verified = await verifyJwt(core, token, { allowExpired: true });
  return verified?.app ?? null;
}

/** The session's live refresh token as JWTPlus get-session lists it, or null. */
export async function liveRefreshOf(core: EngineCore, app: App, session: Session): Promise<LiveRefresh | null> {
  const chain = session.refresh;
  if (chain) {
    const id = chainIdOf(core, app, core.formats.formatFor(app.profile), session, chain);
    return { id, issuedAt: chain.issuedAt, notBefore: chain.notBefore, expiresAt: chain.expiresAt };
  }
  return core.store.findLiveLegacyRefresh(session.id);
}
