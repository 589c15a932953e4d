/**
 * What a DPoP replay mark costs a SQLite rotation, by the replay cache's layout (docs/benchmarks.md,
 * "Fourth round"): `node bench/sqlite_replay_marks.mjs [marksHeld=200000] [batch=16]`.
 * - none: the rotation alone (an UPDATE of a random session of 100k, with its locator index);
 * - keyed: schema 6–7's table, a random key as primary key plus an index on expiry;
 * - ordered: schema 8's dpop_marks, primary key (expiry, key), the expiry derived from the proof's iat.
 * Rotations run in transactions of `batch` (as group commit does); the WAL is checkpointed outside the
 * timing (Rotor's checkpointer has a thread of its own). Prints µs per rotation.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const held = Number(process.argv[2] ?? 200_000);
const batch = Number(process.argv[3] ?? 16);
const SESSIONS = 100_000;
const ROTATIONS = 200_000;
const PER_SECOND = 8000; // proofs per second of iat

const LAYOUTS = {
  none: null,
  keyed: 'CREATE TABLE marks (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID; CREATE INDEX marks_expires ON marks(expires_at);',
  ordered: 'CREATE TABLE marks (expires_at INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (expires_at, key)) WITHOUT ROWID;',
};

function run(layout) {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-marks-'));
  const db = new Database(join(dir, 'marks.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE sessions (id TEXT PRIMARY KEY, generation INTEGER, sealed BLOB, locator TEXT) WITHOUT ROWID; CREATE UNIQUE INDEX sessions_locator ON sessions(locator);');
    const ids = Array.from({ length: SESSIONS }, () => randomBytes(13).toString('base64url'));
    const insertSession = db.prepare('INSERT INTO sessions VALUES (?, 0, ?, ?)');
    db.transaction(() => { for (const id of ids) insertSession.run(id, randomBytes(60), randomBytes(16).toString('base64url')); })();
    const start = Math.floor(Date.now() / 1000);
    const markKey = () => createHash('sha256').update(randomBytes(16)).digest('base64url');
    let mark = null;
    if (LAYOUTS[layout]) {
      db.exec(LAYOUTS[layout]);
      const insertHeld = db.prepare('INSERT INTO marks (key, expires_at) VALUES (?, ?)');
      db.transaction(() => { for (let i = 0; i < held; i++) insertHeld.run(markKey(), start - 600 + Math.floor((i * 600) / held) + 601); })();
      mark = db.prepare('INSERT INTO marks (key, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING');
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma('wal_autocheckpoint = 0');
    const rotate = db.prepare('UPDATE sessions SET generation = generation + 1, sealed = ?, locator = ? WHERE id = ?');
    const turn = db.transaction((jobs) => { for (const j of jobs) { mark?.run(j.key, j.expires); rotate.run(j.sealed, j.locator, j.id); } });
    const jobs = Array.from({ length: ROTATIONS }, (_, i) => ({
      key: markKey(), expires: start + Math.floor(i / PER_SECOND) + 601, sealed: randomBytes(60),
      locator: randomBytes(16).toString('base64url'), id: ids[Math.floor(Math.random() * SESSIONS)],
    }));
    let ns = 0n;
    for (let i = 0; i < ROTATIONS; i += batch) {
      const t0 = process.hrtime.bigint();
      turn.immediate(jobs.slice(i, i + batch));
      ns += process.hrtime.bigint() - t0;
      if (i % 8000 === 0) db.pragma('wal_checkpoint(TRUNCATE)');
    }
    return Number(ns) / 1000 / ROTATIONS;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const layout of Object.keys(LAYOUTS)) console.log(`${layout.padEnd(8)} ${run(layout).toFixed(1)} µs per rotation (${held} marks held, transactions of ${batch})`);
