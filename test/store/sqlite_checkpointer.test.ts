import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Checkpointer, checkpointerWorkerUrl } from '../../src/store/sqlite/checkpointer.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite_store.js';
import { assertBuilt, ROOT } from '../helpers/cli.js';
// @ts-expect-error plain JavaScript, shared with the child process below
import { probeCheckpointer } from './checkpointer_probe.mjs';
import { appKeyRecord, appRecord, chainRecord, sessionRecord, signingKeyRecord } from './conformance.js';

const run = promisify(execFile);

/**
 * The background checkpointer (a worker thread started after sustained writes) must change nothing
 * that a reader of the file can see: every committed rotation is there, through another connection,
 * after close and reopen; the WAL stays bounded under continuous writes; close leaves no WAL behind.
 */
describe('SQLite store: WAL checkpoints off the event loop', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function rotateMany(store: SqliteStore, chains: number, rounds: number) {
    const app = appRecord();
    await store.createApp({ app, appKey: appKeyRecord(app.id), signingKey: signingKeyRecord(app.id) });
    const sessions = Array.from({ length: chains }, (_, i) => sessionRecord(app.id, `user-${i}`));
    for (let i = 0; i < chains; i += 1) await store.issueSession({ session: sessions[i]!, newSubjectClaims: {} });
    for (let round = 1; round <= rounds; round += 1) {
      for (let i = 0; i < chains; i += 1) {
        const { rotated } = await store.rotateSession({
          sessionId: sessions[i]!.id, expectGeneration: round, next: chainRecord(round + 1), now: Date.now(), lastIp: null, lastUserAgent: null, horizonAt: 0,
        });
        expect(rotated).toBe(true);
      }
    }
    return sessions;
  }

  it('keeps every rotation visible, the WAL bounded, and leaves no WAL after close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-ckpt-'));
    dirs.push(dir);
    const path = join(dir, 'rotor.db');
    const store = new SqliteStore(path);
    await store.migrate();
    // 16 chains × 600 rounds: far past the point where the checkpointer starts (500 rotations).
    const sessions = await rotateMany(store, 16, 600);

    // Another connection sees every last committed generation while the store is open.
    const reader = new Database(path, { readonly: true });
    const live = reader.prepare('SELECT COUNT(*) AS n FROM sessions WHERE generation = 601').get() as { n: number };
    expect(live.n).toBe(16);
    reader.close();
    // 9,616 commits of several pages each: over 100 MB of WAL if checkpoints never restarted it.
    expect(statSync(`${path}-wal`).size).toBeLessThan(24 * 1024 * 1024);

    await store.close();
    expect(existsSync(`${path}-wal`)).toBe(false);

    const reopened = new SqliteStore(path);
    for (const session of sessions) expect((await reopened.findSession(session.id))?.session.refresh?.generation).toBe(601);
    await reopened.close();
  }, 60_000);

  it('closes cleanly while the checkpointer runs, and a closed store answers store_unavailable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-ckpt-'));
    dirs.push(dir);
    const store = new SqliteStore(join(dir, 'rotor.db'));
    await store.migrate();
    await rotateMany(store, 4, 200);
    await store.close();
    await expect(store.findSession('x')).rejects.toMatchObject({ code: 'store_unavailable' });
  }, 60_000);
});

/**
 * The worker is a file of its own (checkpointer_worker.ts), compiled to dist/ beside checkpointer.js.
 * Under vitest the store runs from src/*.ts, where no compiled sibling exists, so checkpointer.ts
 * takes the build's copy; built, it takes its sibling. A worker that does not load fails quietly
 * (SQLite's own checkpoints take over), so both ways are checked here to really checkpoint.
 */
describe('SQLite checkpointer worker file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-ckpt-worker-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is located beside the compiled module, and in dist/ from the TypeScript sources', () => {
    const src = pathToFileURL(join(ROOT, 'src/store/sqlite/checkpointer.ts')).href;
    const built = pathToFileURL(join(ROOT, 'dist/src/store/sqlite/checkpointer.js')).href;
    const expected = pathToFileURL(join(ROOT, 'dist/src/store/sqlite/checkpointer_worker.js')).href;
    expect(checkpointerWorkerUrl(src).href).toBe(expected);
    expect(checkpointerWorkerUrl(built).href).toBe(expected);
  });

  it('starts and checkpoints from the TypeScript sources (vitest)', async () => {
    assertBuilt();
    const result = await probeCheckpointer(Checkpointer, join(dir, 'src.db'));
    expect(result).toMatchObject({ ready: 'ready', failures: [] });
    expect(result.after).toBeGreaterThan(result.before);
  });

  it('starts and checkpoints from dist/ (the built server loads it this way)', async () => {
    assertBuilt();
    const module = pathToFileURL(join(ROOT, 'dist/src/store/sqlite/checkpointer.js')).href;
    const probe = join(import.meta.dirname, 'checkpointer_probe.mjs');
    const { stdout } = await run(process.execPath, [probe, module, join(dir, 'dist.db')], { timeout: 20_000 });
    const result = JSON.parse(stdout) as { ready: string; before: number; after: number; failures: string[] };
    expect(result).toMatchObject({ ready: 'ready', failures: [] });
    expect(result.after).toBeGreaterThan(result.before);
  });
});
