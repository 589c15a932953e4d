import { StoreUnavailableError } from '../../domain/errors.js';
import type { App, AppKeyRecord, Millis, SigningKeyRecord, Subject, SubjectStatus } from '../../domain/types.js';
import type {
  CreateAppInput, CreateAppResult, FindAppInput, PatchSubjectInput, PatchSubjectResult, RotateResult, RotateSigningKeyInput, UpdateAppResult,
} from '../../domain/store.js';
import { appFromRow, appKeyFromRow, signingKeyFromRow, SUBJECT_INSERT_COLUMNS, subjectFromRow, subjectPatchSql } from '../rows.js';
import type { PostgresConnection } from './connection.js';
import { revokeSubjectSessionsIn } from './sessions.js';

/** The catalog: apps, their app keys and signing keys, and subjects. */

// ── apps ─────────────────────────────────────────────────────────────────────────────────────────

export async function createApp(c: PostgresConnection, input: CreateAppInput): Promise<CreateAppResult> {
  const { app, appKey: k, signingKey: s } = input;
  // One statement: the key rows are inserted only if the app row was.
  const rows = await c.one(
    `WITH a AS (
       INSERT INTO apps (id, name, profile, public, policy, description, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id
     ), k AS (
       INSERT INTO app_keys (id, app_id, secret_hash, created_at, revoked_at)
       SELECT $9::text, id, $10::bytea, $11::bigint, $12::bigint FROM a
     ), s AS (
       INSERT INTO signing_keys (kid, app_id, alg, state, public_jwk, private_sealed, created_at, retired_at, publish_until, revoked_at)
       SELECT $13::text, id, $14::text, $15::text, $16::text, $17::bytea, $18::bigint, $19::bigint, $20::bigint, $21::bigint FROM a
     )
     SELECT count(*)::int AS created FROM a`,
    [
      app.id, app.name, app.profile, app.public, JSON.stringify(app.policy), app.description, app.createdAt, app.updatedAt,
      k.id, k.secretHash, k.createdAt, k.revokedAt,
      s.kid, s.alg, s.state, s.publicJwk ? JSON.stringify(s.publicJwk) : null, s.privateSealed, s.createdAt, s.retiredAt,
      s.publishUntil, s.revokedAt,
    ],
  );
  return { created: Number(rows[0]?.created) === 1 };
}

export async function findApp(c: PostgresConnection, ref: FindAppInput): Promise<App | null> {
  const rows = ref.id !== undefined
    ? await c.one('SELECT * FROM apps WHERE id = $1', [ref.id], 'rotor_app_by_id')
    : await c.one('SELECT * FROM apps WHERE name = $1', [ref.name ?? ''], 'rotor_app_by_name');
  return rows[0] ? appFromRow(rows[0]) : null;
}

export async function listApps(c: PostgresConnection): Promise<App[]> {
  return (await c.one('SELECT * FROM apps ORDER BY name')).map(appFromRow);
}

export async function updateApp(c: PostgresConnection, app: App, expectUpdatedAt: Millis): Promise<UpdateAppResult> {
  try {
    // The compare-and-set: a concurrent update holding the row makes this wait, then re-check
    // `updated_at` on the version it committed (READ COMMITTED), so of two writers that read the same
    // row only the first writes; the second is told `stale`.
    const rows = await c.one(
      'UPDATE apps SET name = $1, public = $2, policy = $3, description = $4, updated_at = $5 WHERE id = $6 AND updated_at = $7 RETURNING id',
      [app.name, app.public, JSON.stringify(app.policy), app.description, app.updatedAt, app.id, expectUpdatedAt],
    );
    return rows.length === 1 ? { updated: true as const } : { updated: false as const, reason: 'stale' as const };
  } catch (err) {
    if ((err as { code?: string }).code === '23505') return { updated: false as const, reason: 'name_taken' as const };
    throw err;
  }
}

export async function deleteApp(c: PostgresConnection, appId: string): Promise<boolean> {
  return (await c.one('DELETE FROM apps WHERE id = $1 RETURNING id', [appId])).length === 1;
}

// ── app keys ───────────────────────────────────────────────────────────────────────────────────

export async function createAppKey(c: PostgresConnection, key: AppKeyRecord): Promise<void> {
  await c.one(
    'INSERT INTO app_keys (id, app_id, secret_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)',
    [key.id, key.appId, key.secretHash, key.createdAt, key.revokedAt],
  );
}

export async function findAppKey(c: PostgresConnection, id: string): Promise<AppKeyRecord | null> {
  const rows = await c.one('SELECT * FROM app_keys WHERE id = $1', [id], 'rotor_app_key');
  return rows[0] ? appKeyFromRow(rows[0]) : null;
}

export async function listAppKeys(c: PostgresConnection, appId: string): Promise<AppKeyRecord[]> {
  return (await c.one('SELECT * FROM app_keys WHERE app_id = $1 ORDER BY id', [appId])).map(appKeyFromRow);
}

export async function revokeAppKey(c: PostgresConnection, appId: string, id: string, now: Millis): Promise<boolean> {
  const rows = await c.one(
    'UPDATE app_keys SET revoked_at = $1 WHERE app_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING id', [now, appId, id],
  );
  return rows.length === 1;
}

// ── signing keys ───────────────────────────────────────────────────────────────────────────────

export async function listSigningKeys(c: PostgresConnection, appId: string): Promise<SigningKeyRecord[]> {
  return (await c.one('SELECT * FROM signing_keys WHERE app_id = $1 ORDER BY kid', [appId])).map(signingKeyFromRow);
}

export async function findSigningKey(c: PostgresConnection, kid: string): Promise<SigningKeyRecord | null> {
  const rows = await c.one('SELECT * FROM signing_keys WHERE kid = $1', [kid], 'rotor_signing_key');
  return rows[0] ? signingKeyFromRow(rows[0]) : null;
}

export async function listPublishedSigningKeys(c: PostgresConnection, now: Millis): Promise<SigningKeyRecord[]> {
  return (await c.one(
    `SELECT * FROM signing_keys WHERE state = 'active' OR (state = 'retiring' AND publish_until > $1) ORDER BY app_id, kid`,
    [now], 'rotor_published_keys',
  )).map(signingKeyFromRow);
}

export async function rotateSigningKey(c: PostgresConnection, input: RotateSigningKeyInput): Promise<RotateResult> {
  const n = input.next;
  // One statement. With an expected key: retire it only if it is still the active one (the UPDATE
  // locks the row, so a concurrent rotation waits, re-reads `state`, and retires nothing), and insert
  // the new key only if that happened. With none expected: insert only if the app has no active key;
  // two such inserts meet at the one-active-key unique index, where ON CONFLICT lets the second lose.
  const rows = await c.one(
    `WITH old AS (
       UPDATE signing_keys SET state = 'retiring', retired_at = $3, publish_until = $4
       WHERE app_id = $1 AND kid = $2 AND state = 'active'
       RETURNING kid
     ), ins AS (
       INSERT INTO signing_keys (kid, app_id, alg, state, public_jwk, private_sealed, created_at, retired_at, publish_until, revoked_at)
       SELECT $5::text, $1::text, $6::text, $7::text, $8::text, $9::bytea, $10::bigint, $11::bigint, $12::bigint, $13::bigint
       WHERE CASE WHEN $2::text IS NULL
                  THEN NOT EXISTS (SELECT 1 FROM signing_keys WHERE app_id = $1 AND state = 'active')
                  ELSE EXISTS (SELECT 1 FROM old) END
       ON CONFLICT (app_id) WHERE state = 'active' DO NOTHING
       RETURNING kid
     ), bump AS (
       UPDATE apps SET keys_version = keys_version + 1 WHERE id = $1 AND EXISTS (SELECT 1 FROM ins) RETURNING id
     )
     SELECT count(*)::int AS rotated FROM ins, (SELECT count(*) FROM bump) b`,
    [
      input.appId, input.expectActiveKid, input.now, input.publishUntil,
      n.kid, n.alg, n.state, n.publicJwk ? JSON.stringify(n.publicJwk) : null, n.privateSealed, n.createdAt, n.retiredAt,
      n.publishUntil, n.revokedAt,
    ],
  );
  return { rotated: Number(rows[0]?.rotated) === 1 };
}

export async function revokeSigningKey(c: PostgresConnection, appId: string, kid: string, now: Millis): Promise<boolean> {
  // One statement, so the revocation and the version bump (S2-13) commit together.
  const rows = await c.one(
    `WITH revoked AS (
       UPDATE signing_keys SET state = 'revoked', revoked_at = $1 WHERE app_id = $2 AND kid = $3 AND state != 'revoked' RETURNING kid
     ), bump AS (
       UPDATE apps SET keys_version = keys_version + 1 WHERE id = $2 AND EXISTS (SELECT 1 FROM revoked) RETURNING id
     )
     SELECT kid FROM revoked, (SELECT count(*) FROM bump) b`,
    [now, appId, kid],
  );
  return rows.length === 1;
}

export async function signingKeysVersion(c: PostgresConnection, appId: string): Promise<number> {
  const [row] = await c.one('SELECT keys_version FROM apps WHERE id = $1', [appId], 'rotor_keys_version');
  return Number(row?.keys_version ?? 0);
}

// ── subjects ───────────────────────────────────────────────────────────────────────────────────

export async function findSubject(c: PostgresConnection, appId: string, subject: string): Promise<Subject | null> {
  const rows = await c.one('SELECT * FROM subjects WHERE app_id = $1 AND subject = $2', [appId, subject], 'rotor_subject');
  return rows[0] ? subjectFromRow(rows[0]) : null;
}

/**
 * One READ COMMITTED transaction. The existing row is locked first (FOR NO KEY UPDATE: it waits for
 * issuances holding it FOR SHARE and for other patches, and returns the newest committed status),
 * then only the named columns are updated; a new subject is inserted, and should another transaction
 * insert it first, that row is locked and updated instead. The revocation that follows is a new
 * statement, so it sees every session committed before the lock was granted.
 */
export async function patchSubject(c: PostgresConnection, input: PatchSubjectInput): Promise<PatchSubjectResult> {
  const { appId, subject, set, now } = input;
  const patch = subjectPatchSql(appId, subject, set, now);
  const assignments = [...patch.assignments.map((a, i) => `${a.column} = $${i + 3}`), `updated_at = $${patch.assignments.length + 3}`];
  return c.tx(async (q) => {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const [before] = await q.query('SELECT status FROM subjects WHERE app_id = $1 AND subject = $2 FOR NO KEY UPDATE', [appId, subject]);
      const [row] = before
        ? await q.query(
          `UPDATE subjects SET ${assignments.join(', ')} WHERE app_id = $1 AND subject = $2 RETURNING *`,
          [appId, subject, ...patch.assignments.map((a) => a.value), now],
        )
        : await q.query(
          `INSERT INTO subjects (${SUBJECT_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (app_id, subject) DO NOTHING RETURNING *`,
          patch.insert,
        );
      if (!row) continue; // created by another transaction meanwhile: lock and update that row
      const stored = subjectFromRow(row);
      if (stored.status === 'disabled') await revokeSubjectSessionsIn(q, appId, subject, 'subject_disabled', now);
      return { subject: stored, previousStatus: before ? (before.status as SubjectStatus) : null };
    }
    // Created and deleted again by others, five times over while this waited: not now.
    throw new StoreUnavailableError(new Error('the subject kept being created and deleted concurrently'));
  });
}

export async function deleteSubject(c: PostgresConnection, appId: string, subject: string, now: Millis): Promise<boolean> {
  // Delete first (taking the row lock), then revoke in a fresh statement: see patchSubject.
  return c.tx(async (q) => {
    const deleted = await q.query('DELETE FROM subjects WHERE app_id = $1 AND subject = $2 RETURNING subject', [appId, subject]);
    await revokeSubjectSessionsIn(q, appId, subject, 'subject_deleted', now);
    return deleted.length === 1;
  });
}
