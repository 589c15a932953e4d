import { iso } from '../reply.js';
import { RotorError } from '../../domain/errors.js';
import { isUsableForVerification } from '../../domain/keyring.js';
import type { App, Millis, Session, SigningKeyRecord, Subject } from '../../domain/types.js';
import type { SecurityEventRecord, SubjectListing } from '../../domain/store.js';


export const appView = (app: App) => ({
  id: app.id, name: app.name, profile: app.profile, public: app.public, description: app.description,
  policy: app.policy, createdAt: iso(app.createdAt), updatedAt: iso(app.updatedAt),
});

/**
 * A signing key as an operator reads it. `published`: in the app's JWKS and accepted now (active, or
 * retiring until `publishUntil`); a retiring key past that is still `retiring` (SPEC §1 has no other
 * state for it) but no longer verifies anything.
 */
export const signingKeyView = (key: SigningKeyRecord, now: Millis) => ({
  kid: key.kid, alg: key.alg, state: key.state, published: isUsableForVerification(key, now), createdAt: iso(key.createdAt),
  retiredAt: iso(key.retiredAt), publishUntil: iso(key.publishUntil), revokedAt: iso(key.revokedAt), publicJwk: key.publicJwk,
});

/** Never the password hash: only whether one is set. */
export const subjectView = (s: Subject) => ({
  subject: s.subject, claims: s.claims, status: s.status, hasPassword: s.passwordHash !== null,
  ed25519PublicKey: s.ed25519PublicKey, createdAt: iso(s.createdAt), updatedAt: iso(s.updatedAt),
});

/** A subject in a listing: the subject, and how many of its sessions are live. */
export const subjectListingView = (l: SubjectListing) => ({ ...subjectView(l.subject), liveSessions: l.liveSessions });

/**
 * A session as an operator reads it: the SPEC §4.1 `Session` fields, its state (`live`, `revoked` — and
 * why, in `revokeReason` — or `expired`), when its refresh token expires, how often it rotated, whether it
 * is DPoP-bound, its audience and claims. Never a token or a seal.
 */
export const adminSessionView = (s: Session, state: 'live' | 'revoked' | 'expired') => ({
  id: s.id, subject: s.subject, state, createdAt: iso(s.createdAt), lastRenewedAt: iso(s.lastRenewedAt),
  expiresAt: iso(s.expiresAt), refreshExpiresAt: iso(s.refresh?.expiresAt ?? null),
  ip: s.ip, userAgent: s.userAgent, lastIp: s.lastIp, lastUserAgent: s.lastUserAgent,
  revokedAt: iso(s.revokedAt), revokeReason: s.revokeReason,
  rotations: s.refresh ? Math.max(0, s.refresh.generation - 1) : 0, dpopBound: s.dpopJkt !== null,
  audience: s.audience, claims: s.claims,
});

/** `{id, at, event, appId, ...fields}`: ids, reasons and counts only (what the domain reports). */
export const eventView = (e: SecurityEventRecord) => ({ ...e.fields, id: String(e.id), at: iso(e.at), event: e.event, appId: e.appId });

const MAX_EVENTS = 1000;

/**
 * `GET /admin/events?since=&limit=`: `since` is the `id` (or `next`) of an event already seen, or an ISO
 * 8601 time; without it the newest `limit` events (default 100). Always newest last.
 */
export function eventsQuery(q: Record<string, unknown>): { afterId: number | null; sinceAt: number | null; limit: number } {
  let limit = 100;
  if (q.limit !== undefined && q.limit !== '') {
    limit = typeof q.limit === 'string' && /^\d{1,4}$/.test(q.limit) ? Number(q.limit) : NaN;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS) throw new RotorError('invalid_request', `limit must be a whole number from 1 to ${MAX_EVENTS}`);
  }
  const since = q.since;
  if (since === undefined || since === '') return { afterId: null, sinceAt: null, limit };
  if (typeof since === 'string' && /^\d{1,15}$/.test(since)) return { afterId: Number(since), sinceAt: null, limit };
  const at = typeof since === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(since) ? Date.parse(since) : NaN;
  if (!Number.isFinite(at)) throw new RotorError('invalid_request', 'since must be an event id (the next of a previous answer) or an ISO 8601 time');
  return { afterId: null, sinceAt: at, limit };
}
