/** Versioned migrations; each runs once, in order, inside one transaction. */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    profile TEXT NOT NULL,
    public INTEGER NOT NULL,
    policy TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE app_keys (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX app_keys_app ON app_keys(app_id);
  CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    alg TEXT NOT NULL,
    state TEXT NOT NULL,
    public_jwk TEXT,
    private_sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    publish_until INTEGER,
    revoked_at INTEGER
  );
  CREATE INDEX signing_keys_app ON signing_keys(app_id);
  CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys(app_id) WHERE state = 'active';
  CREATE TABLE subjects (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    claims TEXT NOT NULL,
    status TEXT NOT NULL,
    password_hash TEXT,
    ed25519_public_key TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, subject)
  );
  CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    claims TEXT NOT NULL,
    audience TEXT,
    created_at INTEGER NOT NULL,
    last_renewed_at INTEGER NOT NULL,
    expires_at INTEGER,
    ip TEXT,
    user_agent TEXT,
    last_ip TEXT,
    last_user_agent TEXT,
    revoked_at INTEGER,
    revoke_reason TEXT,
    horizon_at INTEGER NOT NULL
  );
  CREATE INDEX sessions_subject ON sessions(app_id, subject);
  CREATE INDEX sessions_horizon ON sessions(horizon_at);
  CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
  CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    app_id TEXT NOT NULL,
    parent_id TEXT,
    issued_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed_at INTEGER,
    successor_id TEXT,
    successor_sealed BLOB
  ) WITHOUT ROWID;
  CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);
  CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
  CREATE INDEX refresh_tokens_sealed ON refresh_tokens(consumed_at) WHERE successor_sealed IS NOT NULL;
  `,
  // 2: rate-limit counts pooled across processes (one row per one-minute window and key).
  `
  CREATE TABLE rate_hits (
    window_start INTEGER NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (window_start, key)
  ) WITHOUT ROWID;
  `,
  // 3: SPEC §1: apps of the keyless dialect profiles cannot be confidential. Until now every app was
  // created confidential by default; those of these four profiles become public (native and jwtplus
  // apps keep their flag). updated_at moves forward, as for any change of the row (it is the row's
  // version: an update read before this migration must not overwrite it).
  `
  UPDATE apps SET public = 1,
    updated_at = MAX(updated_at + 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
  WHERE profile IN ('verifik', 'flolive', 'fib', 'abitmedia') AND public = 0;
  `,
  // 4: S2-13: every change of an app's signing keys bumps its version, read with the hot queries, so
  // each instance's key cache follows a rotation or revocation at once.
  `
  ALTER TABLE apps ADD COLUMN keys_version INTEGER NOT NULL DEFAULT 0;
  `,
  // 5: one row per session (SPEC §2.9). The refresh chain lives on the session row; refresh_tokens gets
  // no new rows and keeps the pre-upgrade ones until they expire. Existing sessions start at generation 0
  // (their live token is a pre-upgrade record).
  `
  ALTER TABLE sessions ADD COLUMN locator TEXT;
  ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sessions ADD COLUMN refresh_issued_at INTEGER;
  ALTER TABLE sessions ADD COLUMN refresh_not_before INTEGER;
  ALTER TABLE sessions ADD COLUMN refresh_expires_at INTEGER;
  ALTER TABLE sessions ADD COLUMN successor_sealed BLOB;
  CREATE UNIQUE INDEX sessions_locator ON sessions(locator) WHERE locator IS NOT NULL;
  `,
  // 6: DPoP (SPEC §2.10): a session's bound key, and the replay cache of proofs seen.
  `
  ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;
  CREATE TABLE dpop_proofs (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
  CREATE INDEX dpop_proofs_expires ON dpop_proofs(expires_at);
  `,
  // 7: the admin API's listings and the console (SPEC §4.3): an app's sessions newest first; security
  // events every instance sees (kept for ROTOR_REVOKED_RETENTION); each instance's activity samples.
  `
  CREATE INDEX sessions_app_newest ON sessions(app_id, id);
  CREATE TABLE security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    app_id TEXT,
    fields TEXT NOT NULL
  );
  CREATE INDEX security_events_at ON security_events(at);
  CREATE TABLE activity_samples (
    at INTEGER NOT NULL,
    instance TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (at, instance)
  ) WITHOUT ROWID;
  `,
  // 8: the DPoP replay cache in one B-tree keyed by (expiry, key), the expiry derived from the proof (its
  // iat): new marks go to the tree's last leaves and share them within a commit, where a random key dirtied
  // a leaf of its own and the expiry index another. Pruning deletes the tree's front. dpop_proofs stays
  // as it was: its marks are honoured until they expire, and an instance of the release before (same
  // file, not yet restarted) goes on writing it.
  `
  CREATE TABLE dpop_marks (expires_at INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (expires_at, key)) WITHOUT ROWID;
  `,
  // 9: nothing here; PostgreSQL records rotation ids to settle a rotation whose answer was lost with its
  // connection. SQLite is in-process: a commit's outcome is never unknown. The numbers stay in step.
  `
  SELECT 1;
  `,
];
