import { recordableClient } from '../claims.js';
import { invalidAccessToken, RotorError } from '../errors.js';
import { newId } from '../ids.js';
import type { App, Session } from '../types.js';
import type { EngineCore } from './core.js';
import { accessExp, assertUsableLength, finish, mintContext, mintRefresh, nextChain } from './minting.js';
import type { IssueInput, Issued, RenewAccessOptions, VerifiedAccess } from './types.js';

/** Starts a session for a subject: its first access token and, where the app has them, refresh token. */
export async function issue(core: EngineCore, app: App, input: IssueInput): Promise<Issued> {
  const now = core.now();
  const { policy } = app;
  const format = core.formats.formatFor(app.profile);
  const { ip, userAgent } = recordableClient(input.client);
  const expiresAt = policy.sessionMaxAge === null ? null : now + policy.sessionMaxAge * 1000;
  const session: Session = {
    id: newId(now), appId: app.id, subject: input.subject, claims: input.claims, audience: input.audience ?? null,
    createdAt: now, lastRenewedAt: now, expiresAt, ip, userAgent, lastIp: ip, lastUserAgent: userAgent,
    revokedAt: null, revokeReason: null, horizonAt: now, refresh: null,
    locator: format.chainId?.locatesSession ? core.ids.newLocator() : null,
    dpopJkt: input.dpopJkt ?? null,
  };
  if (session.dpopJkt !== null && (app.policy.dpop === 'off' || !format.bindsAccessTokens)) {
    throw new RotorError('invalid_request', `a ${app.profile} app cannot bind sessions with dpopJkt (DPoP binds native apps whose policy dpop is not off)`);
  }
  const key = await core.keyring.activeKey(app);
  const exp = accessExp(app, session, now, input.accessTtl);
  const chain = nextChain(core, app, session, 1, now);
  const minted = chain ? mintRefresh(core, { app, format, session, chain, key, now, accessExp: exp, cnfJkt: session.dpopJkt }) : null;
  session.refresh = minted?.chain ?? null;
  session.horizonAt = Math.max(exp * 1000, chain?.expiresAt ?? 0);
  // Signed before the commit so that a token too long to verify is refused with nothing stored;
  // returned only after it (N1).
  const ctx = minted?.ctx ?? mintContext(core, { app, session, now, accessExp: exp, refresh: null, cnfJkt: session.dpopJkt });
  const issued = finish({ app, session, key, ctx, format, refresh: minted, now });
  assertUsableLength(issued);
  const result = await core.store.issueSession({ session, newSubjectClaims: {}, revokeOthers: input.revokeOthers });
  if (!result.issued) throw new RotorError('subject_disabled', 'the subject is disabled');
  return issued;
}

/**
 * A new access token in the session of a verified one, without touching its refresh chain
 * (Verifik renewals). The session must be alive; `accessTtl` overrides the policy's.
 */
export async function renewAccess(core: EngineCore, access: VerifiedAccess, options: RenewAccessOptions = {}): Promise<Issued> {
  const { app, session } = access;
  // A dialect renewal carries no proof: a bound session, or an app that requires proofs, is not renewable there.
  if (session.dpopJkt !== null || app.policy.dpop === 'required') throw invalidAccessToken('invalid');
  const now = core.now();
  const format = core.formats.formatFor(app.profile);
  const key = await core.keyring.activeKey(app, access.keysVersion);
  const exp = accessExp(app, session, now, options.accessTtl);
  const recordClient = app.policy.binding !== 'off';
  const touched = await core.store.touchSession({
    sessionId: session.id, now, horizonAt: exp * 1000,
    lastIp: recordClient ? options.context?.ip ?? null : null,
    lastUserAgent: recordClient ? options.context?.userAgent ?? null : null,
  });
  if (!touched) throw invalidAccessToken('revoked');
  const ctx = mintContext(core, { app, session, now, accessExp: exp, refresh: null, cnfJkt: null });
  return finish({ app, session: { ...session, lastRenewedAt: now }, key, ctx, format, refresh: null, now });
}
