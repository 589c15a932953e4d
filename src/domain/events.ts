import type { Millis } from './types.js';

/** Outcomes of a refresh, as counted in metrics and logged: `retry` is a grace-window replay, `reuse` a theft signal. */
export type RefreshOutcome = 'rotated' | 'retry' | 'reuse' | 'refused';

export type SecurityEvent =
  | 'reuse_detected'
  | 'session_revoked'
  | 'key_rotated'
  | 'key_revoked'
  | 'login_failed'
  | 'subject_disabled'
  | 'subject_deleted';

/**
 * What the domain tells the outside world. Fields never hold a token, key or secret: only ids
 * (app, session, kid) and reasons.
 */
export interface Observer {
  refresh(outcome: RefreshOutcome, reason: string, appId: string | null): void;
  /** `at`: when it happened by the Rotor's clock (the store's, in a server), when the caller knows it. */
  event(event: SecurityEvent, fields: Record<string, string | number | null>, at?: Millis): void;
}

export const silentObserver: Observer = { refresh: () => {}, event: () => {} };
