/**
 * Versioned migrations for PostgreSQL; each runs once, in order, inside one transaction that holds
 * `pg_advisory_xact_lock(MIGRATION_LOCK)`, so instances starting together apply each exactly once.
 *
 * Same tables and columns as the SQLite schema (src/store/rows.ts maps both). Times are epoch
 * milliseconds (BIGINT); JSON is kept as TEXT so claims keep their key order and `\u0000` inside a
 * JSON string is stored as written (jsonb would reorder keys and refuse it). Identifier and name
 * columns use the "C" collation: byte order, as in SQLite, so listings sort the same on both stores,
 * and comparisons skip locale rules.
 */
export const MIGRATION_LOCK = 0x526f746f72; // "Rotor"
/** Held (session-level, try-only) while one instance prunes; the others skip that round. */
export const PRUNE_LOCK = MIGRATION_LOCK + 1;

export const POSTGRES_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE apps (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    profile TEXT NOT NULL,
    public BOOLEAN NOT NULL,
    policy TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );
  CREATE TABLE app_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  CREATE INDEX app_keys_app ON app_keys(app_id);
  CREATE TABLE signing_keys (
    kid TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    alg TEXT NOT NULL,
    state TEXT NOT NULL,
    public_jwk TEXT,
    private_sealed BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    publish_until BIGINT,
    revoked_at BIGINT
  );
  CREATE INDEX signing_keys_app ON signing_keys(app_id);
  CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys(app_id) WHERE state = 'active';
  CREATE TABLE subjects (
    app_id TEXT COLLATE "C" NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject TEXT COLLATE "C" NOT NULL,
    claims TEXT NOT NULL,
    status TEXT NOT NULL,
    password_hash TEXT,
    ed25519_public_key TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, subject)
  );
  CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject TEXT COLLATE "C" NOT NULL,
    claims TEXT NOT NULL,
    audience TEXT,
    created_at BIGINT NOT NULL,
    last_renewed_at BIGINT NOT NULL,
    expires_at BIGINT,
    ip TEXT,
    user_agent TEXT,
    last_ip TEXT,
    last_user_agent TEXT,
    revoked_at BIGINT,
    revoke_reason TEXT,
    horizon_at BIGINT NOT NULL
  );
  CREATE INDEX sessions_subject ON sessions(app_id, subject);
  CREATE INDEX sessions_horizon ON sessions(horizon_at);
  CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
  CREATE TABLE refresh_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    app_id TEXT COLLATE "C" NOT NULL,
    parent_id TEXT COLLATE "C",
    issued_at BIGINT NOT NULL,
    not_before BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT,
    successor_id TEXT COLLATE "C",
    successor_sealed BYTEA
  );
  CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);
  CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
  CREATE INDEX refresh_tokens_sealed ON refresh_tokens(consumed_at) WHERE successor_sealed IS NOT NULL;
  `,
  // 2: rate-limit counts pooled across instances (one row per one-minute window and key).
  `
  CREATE TABLE rate_hits (
    window_start BIGINT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (window_start, key)
  );
  `,
  // 3: SPEC §1: apps of the keyless dialect profiles cannot be confidential. Until now every app was
  // created confidential by default; those of these four profiles become public (native and jwtplus
  // apps keep their flag). updated_at moves forward, as for any change of the row (it is the row's
  // version: an update read before this migration must not overwrite it).
  `
  UPDATE apps SET public = TRUE,
    updated_at = GREATEST(updated_at + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
  WHERE profile IN ('verifik', 'flolive', 'fib', 'abitmedia') AND NOT public;
  `,
  // 4: S2-13: every change of an app's signing keys bumps its version, read with the hot queries, so
  // each instance's key cache follows a rotation or revocation at once.
  `
  ALTER TABLE apps ADD COLUMN keys_version BIGINT NOT NULL DEFAULT 0;
  `,
  // 5: one row per session (SPEC §2.9). The refresh chain lives on the session row; refresh_tokens gets
  // no new rows and keeps the pre-upgrade ones until they expire. Existing sessions start at generation 0
  // (their live token is a pre-upgrade record).
  `
  ALTER TABLE sessions ADD COLUMN locator TEXT COLLATE "C";
  ALTER TABLE sessions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE sessions ADD COLUMN refresh_issued_at BIGINT;
  ALTER TABLE sessions ADD COLUMN refresh_not_before BIGINT;
  ALTER TABLE sessions ADD COLUMN refresh_expires_at BIGINT;
  ALTER TABLE sessions ADD COLUMN successor_sealed BYTEA;
  CREATE UNIQUE INDEX sessions_locator ON sessions(locator) WHERE locator IS NOT NULL;
  `,
  // 6: DPoP (SPEC §2.10): a session's bound key, and the replay cache of proofs seen.
  `
  ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT COLLATE "C";
  CREATE TABLE dpop_proofs (key TEXT COLLATE "C" PRIMARY KEY, expires_at BIGINT NOT NULL);
  CREATE INDEX dpop_proofs_expires ON dpop_proofs(expires_at);
  `,
  // 7: the admin API's listings and the console (SPEC §4.3): an app's sessions newest first; security
  // events every instance sees (kept for ROTOR_REVOKED_RETENTION); each instance's activity samples.
  `
  CREATE INDEX sessions_app_newest ON sessions(app_id, id);
  CREATE TABLE security_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    app_id TEXT COLLATE "C",
    fields TEXT NOT NULL
  );
  CREATE INDEX security_events_at ON security_events(at);
  CREATE TABLE activity_samples (
    at BIGINT NOT NULL,
    instance TEXT COLLATE "C" NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (at, instance)
  );
  `,
  // 8: nothing here; SQLite re-keys its DPoP replay cache by (expiry, key). The numbers stay in step
  // across the stores (the shared suite builds old databases by version).
  `
  SELECT 1;
  `,
  // 9: a rotation whose answer was lost with its connection (SECURITY-CASES F-02) is settled by reading
  // the row (src/store/postgres/outcome.ts): each rotation writes an id of its own, which no racing
  // rotation of the same generation shares; a rotation that could not be settled before its caller was
  // answered 503 is marked, so its parent stays redeemable (FoundSession.rotation 'unconfirmed') while
  // that generation is live. Both columns are NULL until written: nothing is rewritten.
  `
  ALTER TABLE sessions ADD COLUMN rotation_id BIGINT;
  ALTER TABLE sessions ADD COLUMN unconfirmed_generation BIGINT;
  `,
];
