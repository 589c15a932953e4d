import { MAX_TOKEN_LENGTH } from '../../crypto/jwt.js';
import type { App, Session } from '../types.js';
import type { EngineCore } from './core.js';
import { locate } from './locate.js';
import { checkAccess } from './verify.js';

/**
 * RFC 7009 semantics: revokes the session of a valid refresh or access token; anything else is
 * silently ignored. Store failures still throw (a revocation is never falsely confirmed).
 */
export async function revokeToken(core: EngineCore, token: unknown, client?: App): Promise<{ revoked: boolean }> {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return { revoked: false };
  const session = (await refreshSessionOf(core, token, client)) ?? (await accessSessionOf(core, token, client));
  if (!session) return { revoked: false };
  return { revoked: await revokeSession(core, { sessionId: session.id, reason: 'revoked', appId: session.appId }) };
}

/** The session of an unexpired refresh token of `client` (any app without one), or null. */
async function refreshSessionOf(core: EngineCore, token: string, client: App | undefined): Promise<Session | null> {
  // Revocable from the moment it was issued: its not-before delay limits renewal, not logout (S2-03).
  const result = await locate(core, token, { client, earlyAllowed: true });
  if (!result.ok) return null;
  const { located } = result;
  const unexpired = located.kind === 'chain'
    ? located.found.session.refresh !== null && core.now() < located.found.session.refresh.expiresAt
    : core.now() < located.found.record.expiresAt;
  return unexpired && (!client || located.found.session.appId === client.id) ? located.found.session : null;
}

async function accessSessionOf(core: EngineCore, token: string, client: App | undefined): Promise<Session | null> {
  const check = await checkAccess(core, token, { client });
  return check.ok ? check.access.session : null;
}

export interface RevokeSessionInput {
  sessionId: string;
  /** Why, as recorded on the session and in the security events (`revoked`, `logout`…). */
  reason: string;
  appId: string | null;
}

export async function revokeSession(core: EngineCore, input: RevokeSessionInput): Promise<boolean> {
  const revoked = await core.store.revokeSession(input.sessionId, input.reason, core.now());
  if (revoked) core.observer.event('session_revoked', { appId: input.appId, sessionId: input.sessionId, reason: input.reason });
  return revoked;
}
