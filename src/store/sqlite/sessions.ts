import type { Millis, RefreshRecord, Session } from '../../domain/types.js';
import {
  UPGRADED, type FoundLegacyRefresh, type FoundSession, type IssueSessionInput, type IssueSessionResult, type RotateInput, type RotateResult,
  type TouchInput, type UpgradeLegacyInput,
} from '../../domain/store.js';
import {
  chainValues, foundSessionFromRow, refreshFromRow, SESSION_CHAIN_COLUMNS, SESSION_COLUMNS_PREFIXED, sessionFromRow, subjectFromRow,
} from '../rows.js';
import type { Row, SqliteConnection } from './connection.js';

/** Sessions, their rotation, and pre-upgrade refresh records. */

/** Unwinds a transaction whose second write lost: nothing of it is kept. */
class LostRace extends Error {}

/** Built once: the statement cache is keyed by the SQL text, so the hot path must not rebuild it. */
const FIND_LEGACY_SQL = `SELECT r.*, ${SESSION_COLUMNS_PREFIXED}, subj.status AS subject_status, a.keys_version
  FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id
  WHERE r.id = ?`;

/** The hot read: a session with its subject's status and its app's signing-key version, by id or locator. */
const findSessionSql = (by: 'id' | 'locator') => `SELECT s.*, subj.status AS subject_status, a.keys_version FROM sessions s
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id WHERE s.${by} = ?`;
const FIND_SESSION_SQL = findSessionSql('id');
const FIND_SESSION_BY_LOCATOR_SQL = findSessionSql('locator');

/** The rotation's one conditional write (SPEC §2.9): the generation is the compare-and-set. */
const ROTATE_SQL = `UPDATE sessions SET generation = ?, refresh_issued_at = ?, refresh_not_before = ?, refresh_expires_at = ?,
    successor_sealed = ?, last_renewed_at = ?, last_ip = COALESCE(?, last_ip), last_user_agent = COALESCE(?, last_user_agent),
    horizon_at = MAX(horizon_at, ?), dpop_jkt = COALESCE(dpop_jkt, ?)
  WHERE id = ? AND generation = ? AND revoked_at IS NULL`;

export function issueSession(c: SqliteConnection, input: IssueSessionInput): Promise<IssueSessionResult> {
  return c.run(() =>
    c.immediate(() => {
      const { session } = input;
      let row = c.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(session.appId, session.subject) as Row | undefined;
      if (!row) {
        c.sql(
          `INSERT INTO subjects (app_id, subject, claims, status, created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?)`,
        ).run(session.appId, session.subject, JSON.stringify(input.newSubjectClaims), session.createdAt, session.createdAt);
        row = c.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(session.appId, session.subject) as Row;
      }
      const subject = subjectFromRow(row);
      if (subject.status !== 'active') return { issued: false as const, reason: 'subject_disabled' as const };
      if (input.revokeOthers) revokeSubjectSessionsNow(c, session.appId, session.subject, input.revokeOthers, session.createdAt);
      insertSession(c, session);
      return { issued: true as const, subject };
    }),
  );
}

function insertSession(c: SqliteConnection, s: Session): void {
  c.sql(
    `INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
       last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at, locator, dpop_jkt, ${SESSION_CHAIN_COLUMNS})
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(
    s.id, s.appId, s.subject, JSON.stringify(s.claims), s.audience, s.createdAt, s.lastRenewedAt, s.expiresAt, s.ip,
    s.userAgent, s.lastIp, s.lastUserAgent, s.revokedAt, s.revokeReason, s.horizonAt, s.locator, s.dpopJkt, ...chainValues(s.refresh),
  );
}

export function findSession(c: SqliteConnection, id: string): Promise<FoundSession | null> {
  return c.run(() => foundSessionFromRow(c.sql(FIND_SESSION_SQL).get(id) as Row | undefined));
}

export function findSessionByLocator(c: SqliteConnection, locator: string): Promise<FoundSession | null> {
  return c.run(() => foundSessionFromRow(c.sql(FIND_SESSION_BY_LOCATOR_SQL).get(locator) as Row | undefined));
}

export function listSessions(c: SqliteConnection, appId: string, subject: string): Promise<Session[]> {
  return c.run(() =>
    (c.sql('SELECT * FROM sessions WHERE app_id = ? AND subject = ? ORDER BY id DESC').all(appId, subject) as Row[])
      .map((row) => sessionFromRow(row)),
  );
}

export function revokeSession(c: SqliteConnection, sessionId: string, reason: string, now: Millis): Promise<boolean> {
  return c.run(() =>
    c.sql('UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL')
      .run(now, reason, sessionId).changes === 1,
  );
}

/** Inside the caller's transaction (or alone): revokes the subject's live sessions, returns how many. */
export function revokeSubjectSessionsNow(c: SqliteConnection, appId: string, subject: string, reason: string, now: Millis): number {
  return c.sql('UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE app_id = ? AND subject = ? AND revoked_at IS NULL')
    .run(now, reason, appId, subject).changes;
}

export function revokeSubjectSessions(c: SqliteConnection, appId: string, subject: string, reason: string, now: Millis): Promise<number> {
  return c.run(() => revokeSubjectSessionsNow(c, appId, subject, reason, now));
}

/** Inside a group-committed transaction (see group_commit.ts): a renewal without rotation. */
export function touchOne(c: SqliteConnection, input: TouchInput): boolean {
  return c.sql(
    `UPDATE sessions SET last_renewed_at = ?, last_ip = COALESCE(?, last_ip), last_user_agent = COALESCE(?, last_user_agent),
       horizon_at = MAX(horizon_at, ?) WHERE id = ? AND revoked_at IS NULL`,
  ).run(input.now, input.lastIp, input.lastUserAgent, input.horizonAt, input.sessionId).changes === 1;
}

/** Inside a transaction: the one conditional write that decides the race. */
export function rotateOne(c: SqliteConnection, input: RotateInput): boolean {
  const n = input.next;
  return c.sql(ROTATE_SQL).run(
    n.generation, n.issuedAt, n.notBefore, n.expiresAt, n.successorSealed, input.now, input.lastIp, input.lastUserAgent,
    input.horizonAt, input.bindJkt ?? null, input.sessionId, input.expectGeneration,
  ).changes === 1;
}

// ── pre-upgrade refresh records ──────────────────────────────────────────────────────────────────

export function findLiveLegacyRefresh(c: SqliteConnection, sessionId: string): Promise<RefreshRecord | null> {
  return c.run(() => {
    const row = c.sql(
      `SELECT r.* FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
       WHERE r.session_id = ? AND r.consumed_at IS NULL AND s.generation = 0 ORDER BY r.issued_at DESC LIMIT 1`,
    ).get(sessionId) as Row | undefined;
    return row ? refreshFromRow(row) : null;
  });
}

export function findLegacyRefresh(c: SqliteConnection, id: string): Promise<FoundLegacyRefresh | null> {
  return c.run(() => {
    const row = c.sql(FIND_LEGACY_SQL).get(id) as Row | undefined;
    if (!row) return null;
    return { ...(foundSessionFromRow(row, 's_') as FoundSession), record: refreshFromRow(row) };
  });
}

export function upgradeLegacy(c: SqliteConnection, input: UpgradeLegacyInput): Promise<RotateResult> {
  return c.run(() =>
    c.immediate(() => {
      const consumed = c.sql(
        `UPDATE refresh_tokens SET consumed_at = ?, successor_id = ? WHERE id = ? AND consumed_at IS NULL AND session_id = ?`,
      ).run(input.now, UPGRADED, input.legacyId, input.sessionId).changes === 1;
      // Both or neither: a lost second write rolls the first back.
      if (!consumed || !rotateOne(c, input)) throw new LostRace();
      if (input.locator !== null) c.sql('UPDATE sessions SET locator = ? WHERE id = ? AND locator IS NULL').run(input.locator, input.sessionId);
      return { rotated: true };
    }),
  ).catch((err: unknown) => {
    if (err instanceof LostRace) return { rotated: false };
    throw err;
  });
}
