import type { App, AppKeyRecord, Millis, SigningKeyRecord, Subject, SubjectStatus } from '../../domain/types.js';
import type {
  CreateAppInput, CreateAppResult, FindAppInput, PatchSubjectInput, PatchSubjectResult, RotateResult, RotateSigningKeyInput, UpdateAppResult,
} from '../../domain/store.js';
import { appFromRow, appKeyFromRow, signingKeyFromRow, SUBJECT_INSERT_COLUMNS, subjectFromRow, subjectPatchSql } from '../rows.js';
import type { Row, SqliteConnection } from './connection.js';
import { revokeSubjectSessionsNow } from './sessions.js';

/** The catalog: apps, their app keys and signing keys, and subjects. */

// ── apps ─────────────────────────────────────────────────────────────────────────────────────────

export function createApp(c: SqliteConnection, input: CreateAppInput): Promise<CreateAppResult> {
  return c.run(() =>
    c.immediate(() => {
      const { app } = input;
      const inserted = c.sql(
        `INSERT INTO apps (id, name, profile, public, policy, description, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ).run(app.id, app.name, app.profile, app.public ? 1 : 0, JSON.stringify(app.policy), app.description, app.createdAt, app.updatedAt);
      if (inserted.changes === 0) return { created: false };
      insertAppKey(c, input.appKey);
      insertSigningKey(c, input.signingKey);
      return { created: true };
    }),
  );
}

export function findApp(c: SqliteConnection, ref: FindAppInput): Promise<App | null> {
  return c.run(() => {
    const row = ref.id !== undefined
      ? c.sql('SELECT * FROM apps WHERE id = ?').get(ref.id)
      : c.sql('SELECT * FROM apps WHERE name = ?').get(ref.name ?? '');
    return row ? appFromRow(row as Row) : null;
  });
}

export function listApps(c: SqliteConnection): Promise<App[]> {
  return c.run(() => (c.sql('SELECT * FROM apps ORDER BY name').all() as Row[]).map(appFromRow));
}

export function updateApp(c: SqliteConnection, app: App, expectUpdatedAt: Millis): Promise<UpdateAppResult> {
  return c.run(() => {
    try {
      // The compare-and-set: only the row as its caller read it (updated_at is the row's version).
      const result = c.sql(
        'UPDATE apps SET name = ?, public = ?, policy = ?, description = ?, updated_at = ? WHERE id = ? AND updated_at = ?',
      ).run(app.name, app.public ? 1 : 0, JSON.stringify(app.policy), app.description, app.updatedAt, app.id, expectUpdatedAt);
      return result.changes === 1 ? { updated: true as const } : { updated: false as const, reason: 'stale' as const };
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return { updated: false as const, reason: 'name_taken' as const };
      throw err;
    }
  });
}

export function deleteApp(c: SqliteConnection, appId: string): Promise<boolean> {
  return c.run(() => c.sql('DELETE FROM apps WHERE id = ?').run(appId).changes === 1);
}

// ── app keys ─────────────────────────────────────────────────────────────────────────────────────

function insertAppKey(c: SqliteConnection, key: AppKeyRecord): void {
  c.sql('INSERT INTO app_keys (id, app_id, secret_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)')
    .run(key.id, key.appId, key.secretHash, key.createdAt, key.revokedAt);
}

export function createAppKey(c: SqliteConnection, key: AppKeyRecord): Promise<void> {
  return c.run(() => insertAppKey(c, key));
}

export function findAppKey(c: SqliteConnection, id: string): Promise<AppKeyRecord | null> {
  return c.run(() => {
    const row = c.sql('SELECT * FROM app_keys WHERE id = ?').get(id);
    return row ? appKeyFromRow(row as Row) : null;
  });
}

export function listAppKeys(c: SqliteConnection, appId: string): Promise<AppKeyRecord[]> {
  return c.run(() => (c.sql('SELECT * FROM app_keys WHERE app_id = ? ORDER BY id').all(appId) as Row[]).map(appKeyFromRow));
}

export function revokeAppKey(c: SqliteConnection, appId: string, id: string, now: Millis): Promise<boolean> {
  return c.run(() =>
    c.sql('UPDATE app_keys SET revoked_at = ? WHERE app_id = ? AND id = ? AND revoked_at IS NULL').run(now, appId, id).changes === 1,
  );
}

// ── signing keys ─────────────────────────────────────────────────────────────────────────────────

function insertSigningKey(c: SqliteConnection, key: SigningKeyRecord): void {
  c.sql(
    `INSERT INTO signing_keys (kid, app_id, alg, state, public_jwk, private_sealed, created_at, retired_at, publish_until, revoked_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(
    key.kid, key.appId, key.alg, key.state, key.publicJwk ? JSON.stringify(key.publicJwk) : null, key.privateSealed,
    key.createdAt, key.retiredAt, key.publishUntil, key.revokedAt,
  );
}

export function listSigningKeys(c: SqliteConnection, appId: string): Promise<SigningKeyRecord[]> {
  return c.run(() => (c.sql('SELECT * FROM signing_keys WHERE app_id = ? ORDER BY kid').all(appId) as Row[]).map(signingKeyFromRow));
}

export function findSigningKey(c: SqliteConnection, kid: string): Promise<SigningKeyRecord | null> {
  return c.run(() => {
    const row = c.sql('SELECT * FROM signing_keys WHERE kid = ?').get(kid);
    return row ? signingKeyFromRow(row as Row) : null;
  });
}

export function listPublishedSigningKeys(c: SqliteConnection, now: Millis): Promise<SigningKeyRecord[]> {
  return c.run(() =>
    (c.sql(
      `SELECT * FROM signing_keys WHERE state = 'active' OR (state = 'retiring' AND publish_until > ?) ORDER BY app_id, kid`,
    ).all(now) as Row[]).map(signingKeyFromRow),
  );
}

export function rotateSigningKey(c: SqliteConnection, input: RotateSigningKeyInput): Promise<RotateResult> {
  return c.run(() =>
    c.immediate(() => {
      const active = c.sql(`SELECT kid FROM signing_keys WHERE app_id = ? AND state = 'active'`).get(input.appId) as Row | undefined;
      if ((active ? String(active.kid) : null) !== input.expectActiveKid) return { rotated: false };
      if (active) {
        c.sql(`UPDATE signing_keys SET state = 'retiring', retired_at = ?, publish_until = ? WHERE kid = ?`)
          .run(input.now, input.publishUntil, active.kid);
      }
      insertSigningKey(c, input.next);
      bumpKeysVersion(c, input.appId);
      return { rotated: true };
    }),
  );
}

export function revokeSigningKey(c: SqliteConnection, appId: string, kid: string, now: Millis): Promise<boolean> {
  return c.run(() =>
    c.immediate(() => {
      const revoked = c.sql(`UPDATE signing_keys SET state = 'revoked', revoked_at = ? WHERE app_id = ? AND kid = ? AND state != 'revoked'`)
        .run(now, appId, kid).changes === 1;
      if (revoked) bumpKeysVersion(c, appId);
      return revoked;
    }),
  );
}

export function signingKeysVersion(c: SqliteConnection, appId: string): Promise<number> {
  return c.run(() => Number((c.sql('SELECT keys_version FROM apps WHERE id = ?').get(appId) as Row | undefined)?.keys_version ?? 0));
}

/** In the transaction of every signing-key change (S2-13). */
function bumpKeysVersion(c: SqliteConnection, appId: string): void {
  c.sql('UPDATE apps SET keys_version = keys_version + 1 WHERE id = ?').run(appId);
}

// ── subjects ─────────────────────────────────────────────────────────────────────────────────────

export function findSubject(c: SqliteConnection, appId: string, subject: string): Promise<Subject | null> {
  return c.run(() => {
    const row = c.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(appId, subject);
    return row ? subjectFromRow(row as Row) : null;
  });
}

/**
 * In one `BEGIN IMMEDIATE` transaction, which holds the database's write lock from its first
 * statement: no other connection or process writes between the read of the status before and the
 * write, nor between the write and the revocation.
 */
export function patchSubject(c: SqliteConnection, input: PatchSubjectInput): Promise<PatchSubjectResult> {
  const { appId, subject, set, now } = input;
  return c.run(() =>
    c.immediate(() => {
      const patch = subjectPatchSql(appId, subject, set, now);
      const before = c.sql('SELECT status FROM subjects WHERE app_id = ? AND subject = ?').get(appId, subject) as Row | undefined;
      if (!before) {
        c.sql(`INSERT INTO subjects (${SUBJECT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(...patch.insert);
      } else {
        // Only the columns the patch names: a concurrent patch of another column keeps its value.
        const assignments = [...patch.assignments.map((a) => `${a.column} = ?`), 'updated_at = ?'].join(', ');
        c.sql(`UPDATE subjects SET ${assignments} WHERE app_id = ? AND subject = ?`)
          .run(...patch.assignments.map((a) => a.value), now, appId, subject);
      }
      const stored = subjectFromRow(c.sql('SELECT * FROM subjects WHERE app_id = ? AND subject = ?').get(appId, subject) as Row);
      if (stored.status === 'disabled') revokeSubjectSessionsNow(c, appId, subject, 'subject_disabled', now);
      return { subject: stored, previousStatus: before ? (before.status as SubjectStatus) : null };
    }),
  );
}

export function deleteSubject(c: SqliteConnection, appId: string, subject: string, now: Millis): Promise<boolean> {
  return c.run(() =>
    c.immediate(() => {
      revokeSubjectSessionsNow(c, appId, subject, 'subject_deleted', now);
      return c.sql('DELETE FROM subjects WHERE app_id = ? AND subject = ?').run(appId, subject).changes === 1;
    }),
  );
}
