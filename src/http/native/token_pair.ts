import { iso } from '../reply.js';
import type { Issued } from '../../domain/engine.js';

/** SPEC §4.1 `TokenPair`. */
export function tokenPair(issued: Issued): Record<string, unknown> {
  const pair: Record<string, unknown> = {
    accessToken: issued.accessToken,
    tokenType: issued.tokenType,
    expiresIn: issued.expiresIn,
  };
  if (issued.refreshToken !== null) {
    pair.refreshToken = issued.refreshToken;
    pair.refreshExpiresIn = issued.refreshExpiresIn;
  }
  pair.sessionId = issued.session.id;
  return pair;
}


/** SPEC §4.1 `Session`. */
export function sessionView(s: import('../../domain/types.js').Session): Record<string, unknown> {
  const view: Record<string, unknown> = {
    id: s.id, subject: s.subject, createdAt: iso(s.createdAt), lastRenewedAt: iso(s.lastRenewedAt),
    expiresAt: iso(s.expiresAt), ip: s.ip, userAgent: s.userAgent, lastIp: s.lastIp, lastUserAgent: s.lastUserAgent,
  };
  if (s.revokedAt !== null) {
    view.revokedAt = iso(s.revokedAt);
    view.revokeReason = s.revokeReason;
  }
  return view;
}
