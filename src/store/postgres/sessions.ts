import type { Millis, RefreshRecord, Session } from '../../domain/types.js';
import {
  UPGRADED, type FoundLegacyRefresh, type FoundSession, type IssueSessionInput, type IssueSessionResult, type RotateInput, type RotateResult,
  type TouchInput, type UpgradeLegacyInput,
} from '../../domain/store.js';
import { chainValues, foundSessionFromRow, refreshFromRow, SESSION_CHAIN_COLUMNS, SESSION_COLUMNS_PREFIXED, sessionFromRow, subjectFromRow } from '../rows.js';
import { toStoreError } from './errors.js';
import type { PostgresConnection, Querier } from './connection.js';
import { newRotationId, settledRotation, timelyAfter, type UnconfirmedRotations } from './outcome.js';

/** Sessions, their rotation, and pre-upgrade refresh records. */

const FIND_LEGACY_SQL = `SELECT r.*, ${SESSION_COLUMNS_PREFIXED}, subj.status AS subject_status, a.keys_version
  FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id WHERE r.id = $1`;

/** The hot read: a session with its subject's status and its app's signing-key version. */
export const FIND_SESSION_SQL = `SELECT s.*, subj.status AS subject_status, a.keys_version FROM sessions s
  LEFT JOIN subjects subj ON subj.app_id = s.app_id AND subj.subject = s.subject
  LEFT JOIN apps a ON a.id = s.app_id`;

/**
 * The rotation's compare-and-set columns, in `rotateValues` order. `rotation_id` names this rotation
 * alone (see outcome.ts): what settles it when its answer is lost.
 */
export const ROTATE_SET = `generation = $1::bigint, refresh_issued_at = $2::bigint, refresh_not_before = $3::bigint,
  refresh_expires_at = $4::bigint, successor_sealed = $5::bytea, last_renewed_at = $6::bigint,
  last_ip = COALESCE($7::text, last_ip), last_user_agent = COALESCE($8::text, last_user_agent), horizon_at = GREATEST(horizon_at, $9::bigint),
  dpop_jkt = COALESCE(dpop_jkt, $12::text), rotation_id = $13::bigint`;

export const rotateValues = (input: RotateInput, rotationId: string): unknown[] => [
  input.next.generation, input.next.issuedAt, input.next.notBefore, input.next.expiresAt, input.next.successorSealed, input.now,
  input.lastIp, input.lastUserAgent, input.horizonAt, input.sessionId, input.expectGeneration, input.bindJkt ?? null, rotationId,
];

/**
 * The rotation: ONE conditional UPDATE of the session's row (SPEC §2.9). Of any number of concurrent
 * rotations of one generation exactly one finds `generation = expected`; the others wait for its row
 * lock, re-check the newest row version (READ COMMITTED) and update nothing. A revocation is an UPDATE
 * of the same row, so the two serialise on it: a rotation never commits after a revocation it did not
 * see, and a revocation that waited revokes the session with its new generation. The row is locked
 * first and the deadline read after (outcome.ts), so that an answer lost with its connection can be
 * settled from the row.
 */
export function rotateOne(c: PostgresConnection, unconfirmed: UnconfirmedRotations, input: RotateInput): Promise<RotateResult> {
  return settledRotation(c, unconfirmed, input, null, async (rotationId, deadline) => {
    const [row] = await c.write(
      `WITH locked AS MATERIALIZED (
         SELECT id FROM sessions WHERE id = $10 FOR NO KEY UPDATE
       ), timely AS MATERIALIZED (${timelyAfter('locked', '$14')}
       ), rotated AS (
         UPDATE sessions SET ${ROTATE_SET}
         WHERE id = $10 AND generation = $11::bigint AND revoked_at IS NULL AND (SELECT ok FROM timely) RETURNING id
       )
       SELECT (SELECT ok FROM timely) AS timely, EXISTS (SELECT 1 FROM rotated) AS rotated`,
      [...rotateValues(input, rotationId), deadline], 'rotor_rotate_session',
    );
    if (row?.timely !== true) throw c.lateRotation();
    return { rotated: row.rotated === true };
  });
}

export async function issueSession(c: PostgresConnection, input: IssueSessionInput): Promise<IssueSessionResult> {
  const s = input.session;
  return c.tx(async (q) => {
    // Create the subject if it is new (a concurrent creator makes this wait, then do nothing) and
    // lock it: FOR SHARE lets issuances run side by side while a disable/delete (which updates the
    // row) waits for them and then revokes what they created. Renew-and-revoke takes the stronger
    // lock, so two of them for one subject run one after the other and the second revokes the first.
    await q.query(
      `INSERT INTO subjects (app_id, subject, claims, status, created_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $4)
       ON CONFLICT (app_id, subject) DO NOTHING`,
      [s.appId, s.subject, JSON.stringify(input.newSubjectClaims), s.createdAt], 'rotor_subject_create',
    );
    const [row] = input.revokeOthers
      ? await q.query('SELECT * FROM subjects WHERE app_id = $1 AND subject = $2 FOR NO KEY UPDATE', [s.appId, s.subject], 'rotor_subject_lock')
      : await q.query('SELECT * FROM subjects WHERE app_id = $1 AND subject = $2 FOR SHARE', [s.appId, s.subject], 'rotor_subject_share');
    if (!row) throw new Error('the subject vanished while it was locked'); // unreachable: created above
    const subject = subjectFromRow(row);
    if (subject.status !== 'active') return { issued: false as const, reason: 'subject_disabled' as const };
    if (input.revokeOthers) await revokeSubjectSessionsIn(q, s.appId, s.subject, input.revokeOthers, s.createdAt);
    await q.query(
      `INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
         last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at, locator, dpop_jkt, ${SESSION_CHAIN_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
      [
        s.id, s.appId, s.subject, JSON.stringify(s.claims), s.audience, s.createdAt, s.lastRenewedAt, s.expiresAt, s.ip,
        s.userAgent, s.lastIp, s.lastUserAgent, s.revokedAt, s.revokeReason, s.horizonAt, s.locator, s.dpopJkt, ...chainValues(s.refresh),
      ],
      'rotor_session_insert',
    );
    return { issued: true as const, subject };
  });
}

export async function findSessionByLocator(c: PostgresConnection, unconfirmed: UnconfirmedRotations, locator: string): Promise<FoundSession | null> {
  return unconfirmed.found((await c.one(`${FIND_SESSION_SQL} WHERE s.locator = $1`, [locator], 'rotor_find_session_locator'))[0]);
}

export async function listSessions(c: PostgresConnection, appId: string, subject: string): Promise<Session[]> {
  return (await c.one('SELECT * FROM sessions WHERE app_id = $1 AND subject = $2 ORDER BY id DESC', [appId, subject]))
    .map((row) => sessionFromRow(row));
}

export async function revokeSession(c: PostgresConnection, sessionId: string, reason: string, now: Millis): Promise<boolean> {
  const rows = await c.one(
    'UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL RETURNING id',
    [now, reason, sessionId], 'rotor_revoke_session',
  );
  return rows.length === 1;
}

export async function revokeSubjectSessions(c: PostgresConnection, appId: string, subject: string, reason: string, now: Millis): Promise<number> {
  const client = await c.checkout();
  try {
    const count = await revokeSubjectSessionsIn(c.querier(client), appId, subject, reason, now);
    c.release(client);
    return count;
  } catch (err) {
    c.release(client, err);
    throw toStoreError(err);
  }
}

export async function touchSession(c: PostgresConnection, input: TouchInput): Promise<boolean> {
  const rows = await c.one(
    `UPDATE sessions SET last_renewed_at = $1, last_ip = COALESCE($2, last_ip), last_user_agent = COALESCE($3, last_user_agent),
       horizon_at = GREATEST(horizon_at, $4) WHERE id = $5 AND revoked_at IS NULL RETURNING id`,
    [input.now, input.lastIp, input.lastUserAgent, input.horizonAt, input.sessionId], 'rotor_touch_session',
  );
  return rows.length === 1;
}

// ── pre-upgrade refresh records ──────────────────────────────────────────────────────────────────

export async function findLiveLegacyRefresh(c: PostgresConnection, sessionId: string): Promise<RefreshRecord | null> {
  const [row] = await c.one(
    `SELECT r.* FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
     WHERE r.session_id = $1 AND r.consumed_at IS NULL AND s.generation = 0 ORDER BY r.issued_at DESC LIMIT 1`,
    [sessionId], 'rotor_find_live_legacy',
  );
  return row ? refreshFromRow(row) : null;
}

export async function findLegacyRefresh(c: PostgresConnection, id: string): Promise<FoundLegacyRefresh | null> {
  const [row] = await c.one(FIND_LEGACY_SQL, [id], 'rotor_find_legacy');
  if (!row) return null;
  return { ...(foundSessionFromRow(row, 's_') as FoundSession), record: refreshFromRow(row) };
}

/**
 * Both writes in one statement, so both or neither: the record is consumed only if the session moved
 * from no chain (generation 0) to its first generation in the same step.
 */
export async function upgradeLegacy(c: PostgresConnection, input: UpgradeLegacyInput): Promise<RotateResult> {
  const rows = await c.one(
    `WITH chain AS (
       UPDATE sessions SET ${ROTATE_SET}, locator = COALESCE(locator, $16::text)
       WHERE id = $10 AND generation = $11::bigint AND revoked_at IS NULL
         AND EXISTS (SELECT 1 FROM refresh_tokens WHERE id = $14 AND session_id = $10 AND consumed_at IS NULL)
       RETURNING id
     )
     UPDATE refresh_tokens SET consumed_at = $6::bigint, successor_id = $15
     WHERE id = $14 AND consumed_at IS NULL AND session_id IN (SELECT id FROM chain) RETURNING id`,
    [...rotateValues(input, newRotationId()), input.legacyId, UPGRADED, input.locator],
    'rotor_upgrade_legacy',
  );
  return { rotated: rows.length === 1 };
}

/** Inside the caller's transaction (or alone): revokes the subject's live sessions, returns how many. */
export async function revokeSubjectSessionsIn(q: Querier, appId: string, subject: string, reason: string, now: Millis): Promise<number> {
  const rows = await q.query(
    // The rows are locked in id order first: two subject-wide revocations of one subject (with a logout
    // between them) otherwise took them in different orders and deadlocked.
    `WITH l AS (
       SELECT id FROM sessions WHERE app_id = $3 AND subject = $4 AND revoked_at IS NULL ORDER BY id FOR NO KEY UPDATE
     ), r AS (
       UPDATE sessions s SET revoked_at = $1, revoke_reason = $2 FROM l WHERE s.id = l.id AND s.revoked_at IS NULL RETURNING 1
     ) SELECT count(*)::int AS n FROM r`,
    [now, reason, appId, subject], 'rotor_revoke_subject_sessions',
  );
  return Number(rows[0]?.n ?? 0);
}
