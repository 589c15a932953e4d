import { toSeconds } from '../clock.js';
import { invalidRefreshToken, RotorError, type RefreshRefusal } from '../errors.js';
import type { TokenFormat } from '../formats/format.js';
import type { App, Millis, Session, SubjectStatus } from '../types.js';
import type { ClientContext } from './types.js';

/** Clock leeway for `nbf` (skew between instances). `exp` has none: a token is valid while now < exp. */
export const NBF_LEEWAY_SECONDS = 30;

/** Why a session can no longer be used, as the refusal a refresh would meet; null while it is alive. */
export function sessionRefusal(app: App, session: Session, subjectStatus: SubjectStatus | null, now: Millis): RotorError | null {
  if (subjectStatus === 'disabled') return new RotorError('subject_disabled', 'the subject is disabled', { reason: 'subject_disabled' });
  if (subjectStatus === null) return new RotorError('invalid_refresh_token', 'revoked', { reason: 'subject_not_found' });
  if (session.revokedAt !== null) return invalidRefreshToken('revoked');
  if (session.expiresAt !== null && now >= session.expiresAt) return invalidRefreshToken('expired');
  const idle = app.policy.sessionIdleTimeout;
  if (idle !== null && now - session.lastRenewedAt >= idle * 1000) return invalidRefreshToken('expired');
  return null;
}

export function assertSessionAlive(app: App, session: Session, subjectStatus: SubjectStatus | null, now: Millis): void {
  const refusal = sessionRefusal(app, session, subjectStatus, now);
  if (refusal) throw refusal;
}

/**
 * Without a not-before delay there is nothing to wait for: a clock behind the issuer's (another
 * instance's, or after a step back) must not refuse a fresh token (SECURITY-CASES F-10, F-11). A peer
 * that renews only once `nbf < now` in whole seconds (JWTPlus) keeps that rule.
 */
export function assertNotBefore(app: App, format: TokenFormat, notBefore: Millis, now: Millis): void {
  if (app.policy.refreshNotBefore <= 0) return;
  const early = format.strictNotBefore ? toSeconds(now) <= toSeconds(notBefore) : now < notBefore;
  if (early) throw invalidRefreshToken('not_yet_valid');
}

/** Whether the request's user agent fits the session's where the app binds sessions to it. */
export function bindingHolds(app: App, session: Session, client: ClientContext): boolean {
  return app.policy.binding !== 'useragent' || (client.userAgent ?? null) === session.userAgent;
}

export function assertBinding(app: App, session: Session, client: ClientContext): void {
  if (!bindingHolds(app, session, client)) {
    throw new RotorError('invalid_refresh_token', 'revoked', { reason: 'binding_mismatch' satisfies RefreshRefusal });
  }
}

/**
 * A consumed token came back inside its window, binding permitting. The window is judged at the instant
 * the request arrived (a twin held up by a slow store is still the retry it was); the clock check at
 * `now`: a clock up to the nbf leeway behind the consuming one's (another instance, F-11) still sees a
 * retry, not reuse, while a consumption further in its future is no retry of anything.
 */
export function inGrace(app: App, session: Session, consumedAt: Millis, client: ClientContext, at: { arrivedAt: Millis; now: Millis }): boolean {
  const grace = app.policy.reuseGrace * 1000;
  const inWindow = grace > 0 && at.arrivedAt - consumedAt < grace && at.now + NBF_LEEWAY_SECONDS * 1000 >= consumedAt;
  return inWindow && bindingHolds(app, session, client);
}
