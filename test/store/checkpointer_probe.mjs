// Plain JavaScript, so that it runs both inside vitest (with the Checkpointer from src/) and as a
// child `node` process (with the one from dist/): `node checkpointer_probe.mjs <checkpointer.js URL> <db path>`.
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';

/**
 * Fills a WAL with SQLite's own checkpoints off, starts a Checkpointer on the file and waits until it
 * is ready (its first pass has run), then commits once more. The WAL header's checkpoint sequence
 * number (bytes 12-15) grows only when a writer restarts the WAL, which it does only once every frame
 * was copied into the database: the worker thread's checkpoint, since nothing else checkpointed.
 */
export async function probeCheckpointer(Checkpointer, path) {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t (x INTEGER)');
  for (let i = 0; i < 50; i += 1) db.prepare('INSERT INTO t VALUES (?)').run(i);
  const sequence = () => readFileSync(`${path}-wal`).readUInt32BE(12);
  const before = sequence();
  const failures = [];
  const checkpointer = new Checkpointer(path, 'NORMAL', () => failures.push('worker failed'));
  let ready = 'ready';
  await checkpointer.ready.catch((err) => { ready = String(err?.message ?? err); });
  db.prepare('INSERT INTO t VALUES (?)').run(-1);
  const after = sequence();
  if (ready === 'ready') await checkpointer.stop();
  db.close();
  return { ready, before, after, failures };
}

if (process.argv[2] !== undefined) {
  const { Checkpointer } = await import(process.argv[2]);
  process.stdout.write(JSON.stringify(await probeCheckpointer(Checkpointer, process.argv[3])));
}
