import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { MasterKey } from '../../src/crypto/master_key.js';
import { openRotor } from '../../src/runtime.js';
import { wideModes } from '../../src/store/sqlite/file_modes.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite_store.js';
import { buildRotor, startRotor } from '../helpers/rotor_process.js';
import { admin, createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * S2-12: updates that read a row, await something, then write the whole row back (a subject's password
 * change racing a disable; two PATCHes of one app) lost the other writer's change.
 * S2-07: the SQLite data directory and database were created with the umask's modes (0755, 0644).
 * SPEC §1: a keyless dialect app cannot be made confidential by an update either.
 * ROTOR_TEST_STORE=postgres runs the S2-12 tests on PostgreSQL (test/suites_on_postgres.test.ts);
 * the S2-07 ones are about SQLite files and skip themselves there.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const onPostgres = (process.env.ROTOR_TEST_STORE ?? 'sqlite') !== 'sqlite'; // PostgreSQL or Redis: no SQLite files

describe('S2-12 concurrent updates of one subject or app', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });
  const call = (method: string, path: string, json?: unknown) => server.call(method, path, { json, headers: admin });

  it('S2-12 a password change racing a disable (admin API, many rounds): the subject stays disabled, its sessions end, it gets no new one', async () => {
    const app = await createApp(server, { name: 's2-12-subjects' });
    const bearer = { authorization: `Bearer ${app.appKey}` };
    for (let round = 0; round < 12; round += 1) {
      const subject = `racer-${round}`;
      const path = `/admin/apps/${app.name}/subjects/${subject}`;
      const before = await issue(server, app, subject);
      // The password change starts first and spends tens of milliseconds in argon2; the disable lands
      // meanwhile (or, in the rounds without a pause, either may go first).
      const password = call('PUT', path, { password: `password-${round}` });
      await sleep(round % 3 === 0 ? 0 : 5);
      const disable = call('PUT', path, { status: 'disabled' });
      const [p, d] = await Promise.all([password, disable]);
      expect([p.status, d.status]).toEqual([200, 200]);
      expect(d.body.status).toBe('disabled');

      const shown = await call('GET', path);
      expect({ round, status: shown.body.status, hasPassword: shown.body.hasPassword }).toEqual({ round, status: 'disabled', hasPassword: true });
      const again = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject }, headers: bearer });
      expect({ round, status: again.status, code: again.body?.code }).toEqual({ round, status: 403, code: 'subject_disabled' });
      const renewed = await server.call('POST', '/v1/refresh', { json: { refreshToken: before.refreshToken }, headers: bearer });
      expect(renewed.status).not.toBe(200);
      const sessions = await server.rotor.internals.store.listSessions((await server.rotor.apps.get(app.name)).id, subject);
      expect(sessions.filter((s) => s.revokedAt === null)).toEqual([]);
    }
  });

  it('S2-12 the CLI\'s disable (get, then put the status) racing a password set leaves the subject disabled', async () => {
    const { rotor } = server;
    const app = await rotor.apps.create({ name: 's2-12-cli' });
    for (let round = 0; round < 6; round += 1) {
      const subject = `cli-${round}`;
      await rotor.subjects.put(app.app, subject, { claims: { round } });
      // `rotor subjects disable` does exactly this: get (for subject_not_found), then put { status }.
      const disable = (async () => {
        await rotor.subjects.get(app.app, subject);
        return rotor.subjects.put(app.app, subject, { status: 'disabled' });
      })();
      const password = rotor.subjects.put(app.app, subject, { password: `pw-${round}` });
      await Promise.all([disable, password]);
      expect(await rotor.subjects.get(app.app, subject)).toMatchObject({ status: 'disabled', claims: { round }, passwordHash: expect.stringMatching(/^\$argon2id\$/) });
    }
  });

  it('S2-12 two concurrent updates of different fields of one app both survive (many rounds)', async () => {
    const { rotor } = server;
    const { app } = await rotor.apps.create({ name: 's2-12-apps' });
    for (let round = 0; round < 20; round += 1) {
      const updates = [
        rotor.apps.update(app.id, { policy: { accessTtl: 100 + round } }),
        rotor.apps.update(app.name, { policy: { reuseGrace: round } }),
        rotor.apps.update(app.id, { description: `round ${round}` }),
      ];
      await Promise.all(updates);
      const stored = await rotor.internals.store.findApp({ id: app.id });
      expect({ round, accessTtl: stored?.policy.accessTtl, reuseGrace: stored?.policy.reuseGrace, description: stored?.description })
        .toEqual({ round, accessTtl: 100 + round, reuseGrace: round, description: `round ${round}` });
    }
  });

  it('S2-12 two concurrent PATCHes of different policy fields (admin API) both survive', async () => {
    await createApp(server, { name: 's2-12-patch' });
    for (let round = 0; round < 10; round += 1) {
      const [a, b] = await Promise.all([
        call('PATCH', '/admin/apps/s2-12-patch', { policy: { accessTtl: 200 + round } }),
        call('PATCH', '/admin/apps/s2-12-patch', { policy: { sessionIdleTimeout: 600 + round } }),
      ]);
      expect([a.status, b.status]).toEqual([200, 200]);
      const shown = (await call('GET', '/admin/apps/s2-12-patch')).body;
      expect({ round, accessTtl: shown.policy.accessTtl, idle: shown.policy.sessionIdleTimeout }).toEqual({ round, accessTtl: 200 + round, idle: 600 + round });
    }
  });

  it('S2-12 updates that are each valid but not together: the one that comes second is refused against the newer row', async () => {
    const { rotor } = server;
    // jwtplus: accessTtl must not exceed refreshTtl (10800 s by default).
    const { app } = await rotor.apps.create({ name: 's2-12-combined', profile: 'jwtplus' });
    const results = await Promise.allSettled([
      rotor.apps.update(app.id, { policy: { accessTtl: 7200 } }),
      rotor.apps.update(app.id, { policy: { refreshTtl: 3600 } }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const stored = await rotor.internals.store.findApp({ id: app.id });
    expect(stored!.policy.accessTtl).toBeLessThanOrEqual(stored!.policy.refreshTtl as number);
  });
});

describe('SPEC §1 keyless dialect apps stay public (migration 3 made the existing ones so)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  it('a PATCH cannot make a verifik, flolive, fib or abitmedia app confidential; native and jwtplus apps can be', async () => {
    for (const profile of ['verifik', 'flolive', 'fib', 'abitmedia']) {
      const { app } = await server.rotor.apps.create({ name: `keyless-${profile}`, profile, public: true });
      const res = await server.call('PATCH', `/admin/apps/${app.id}`, { json: { public: false }, headers: admin });
      expect({ profile, status: res.status }).toEqual({ profile, status: 400 });
      expect(res.body.detail).toMatch(/cannot be confidential/);
      expect((await server.rotor.internals.store.findApp({ id: app.id }))?.public).toBe(true);
    }
    for (const profile of ['native', 'jwtplus']) {
      const { app } = await server.rotor.apps.create({ name: `keyed-${profile}`, profile, public: true });
      const res = await server.call('PATCH', `/admin/apps/${app.id}`, { json: { public: false }, headers: admin });
      expect({ profile, status: res.status, public: res.body.public }).toEqual({ profile, status: 200, public: false });
    }
  });
});

describe.skipIf(onPostgres)('S2-07 modes of the SQLite files', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-modes-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }); });
  const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

  /** Runs `work` with the process umask set to `mask` (vitest runs this file in a forked process). */
  async function withUmask<T>(mask: number, work: () => Promise<T>): Promise<T> {
    const previous = process.umask(mask);
    try {
      return await work();
    } finally {
      process.umask(previous);
    }
  }

  for (const mask of [0o022, 0o000]) {
    it(`S2-07 a fresh start under umask ${mask.toString(8).padStart(3, '0')} makes the data directory 0700 and rotor.db, -wal, -shm and master.key 0600`, async () => {
      const data = join(tempDir(), 'var', 'data');
      const db = join(data, 'rotor.db');
      await withUmask(mask, async () => {
        const { rotor } = await openRotor({ config: loadConfig({ ROTOR_DATABASE_URL: `sqlite:${db}` }) });
        try {
          await rotor.apps.create({ name: 'modes' }); // a write: the WAL and its index exist now
          expect(existsSync(`${db}-wal`) && existsSync(`${db}-shm`)).toBe(true);
          expect({
            data: modeOf(data), parent: modeOf(join(data, '..')), db: modeOf(db), wal: modeOf(`${db}-wal`), shm: modeOf(`${db}-shm`),
            key: modeOf(join(data, 'master.key')),
          }).toEqual({ data: '700', parent: '700', db: '600', wal: '600', shm: '600', key: '600' });
        } finally {
          await rotor.close();
        }
      });
    });
  }

  it('S2-07 the master key file made in a directory of its own: the directory is 0700', async () => {
    const keyDir = join(tempDir(), 'keys');
    await withUmask(0o022, async () => {
      MasterKey.fromFile(join(keyDir, 'master.key'));
    });
    expect([modeOf(keyDir), modeOf(join(keyDir, 'master.key'))]).toEqual(['700', '600']);
  });

  it('S2-07 a database in a shared directory (sticky and world-writable, like /tmp) is told to move, not to chmod the directory', async () => {
    const shared = tempDir();
    chmodSync(shared, 0o1777);
    const db = join(shared, 'rotor.db');
    const store = new SqliteStore(db);
    await store.close();
    expect(modeOf(db)).toBe('600');
    expect(wideModes(db)).toEqual([
      expect.objectContaining({ path: shared, mode: 0o777, fix: `keep the database in a directory of its own (mkdir -m 700 ${join(shared, 'rotor')}, and move it there)` }),
    ]);
  });

  // Only root can make a file another user's; the CI machines run the suite as root.
  it.skipIf(process.getuid?.() !== 0)('S5-06 a data directory, database or master key another local user planted is refused, not used (root runs the check)', async () => {
    const NOBODY = 65534;
    const shared = tempDir();
    chmodSync(shared, 0o1777); // a shared working directory, like /tmp
    const data = join(shared, 'data');
    mkdirSync(data, { mode: 0o700 });
    const key = join(data, 'master.key');
    writeFileSync(key, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    const db = join(data, 'rotor.db');
    writeFileSync(db, '', { mode: 0o600 });
    for (const p of [data, key, db]) chownSync(p, NOBODY, NOBODY);
    expect(() => MasterKey.fromFile(key)).toThrow(/belongs to another user \(uid 65534\)/);
    expect(() => new SqliteStore(db)).toThrow(/belongs to another user \(uid 65534\)/);
    // `rotor serve` with the default ./data started there: one line on stderr, a non-zero exit, nothing served.
    const { main, dispose } = await buildRotor();
    try {
      const run = spawnSync(process.execPath, [main, 'serve'], { cwd: shared, env: { ...process.env, ROTOR_PORT: '0', ROTOR_DATABASE_URL: '', ROTOR_MASTER_KEY: '' }, encoding: 'utf8', timeout: 60_000 });
      expect(run.status, run.stderr).toBe(1);
      expect(run.stderr).toMatch(/^rotor: .*belongs to another user \(uid 65534\).*chown it to uid 0/);
      // A planted file in a directory of Rotor's own is refused too; the same files made Rotor's own are used.
      chownSync(data, 0, 0);
      expect(() => MasterKey.fromFile(key)).toThrow(/master key file .* belongs to another user/);
      for (const p of [key, db]) chownSync(p, 0, 0);
      const store = new SqliteStore(db);
      await store.close();
      expect(MasterKey.fromFile(key)).toBeInstanceOf(MasterKey);
    } finally {
      dispose();
    }
  }, 120_000);

  it('S2-07 `rotor serve` over an existing world-readable database warns with the chmod that fixes each path, and changes nothing', async () => {
    const { main, dispose } = await buildRotor();
    try {
      const data = join(tempDir(), 'data');
      const db = join(data, 'rotor.db');
      // A database an older Rotor made under umask 022, with the WAL files a crash left behind.
      mkdirSync(data, { recursive: true });
      const old = new SqliteStore(db);
      await old.migrate();
      await old.close();
      chmodSync(data, 0o755);
      chmodSync(db, 0o644);
      const env = { ROTOR_DATABASE_URL: `sqlite:${db}`, ROTOR_LOG_LEVEL: 'info' };
      const proc = await startRotor(main, env);
      await proc.stop();
      const warnings = proc.logs.map((line) => JSON.parse(line) as Record<string, any>).filter((e) => e.event === 'file_mode_too_wide');
      const byPath = new Map(warnings.map((w) => [w.path as string, w]));
      expect(byPath.get(data)).toMatchObject({ level: 40, mode: '0755', fix: `chmod 700 ${data}` });
      expect(byPath.get(db)).toMatchObject({ level: 40, mode: '0644', fix: `chmod 600 ${db}` });
      expect(byPath.get(db)?.msg).toContain(`${db} is accessible to group or others (mode 0644)`);
      expect(byPath.get(db)?.msg).toContain(`chmod 600 ${db}`);
      // One line per path; the -wal and -shm SQLite made at this start took the database's mode, and are named too.
      expect(warnings.length).toBe(byPath.size);
      for (const p of byPath.keys()) expect([data, db, `${db}-wal`, `${db}-shm`]).toContain(p);
      // Warned, not changed: an operator may have chosen group access.
      expect([modeOf(data), modeOf(db)]).toEqual(['755', '644']);

      // Once fixed as told, a start warns no more (the -wal and -shm went with the clean stop).
      for (const w of warnings) if (existsSync(w.path)) chmodSync(w.path, w.path === data ? 0o700 : 0o600);
      const fixed = await startRotor(main, env);
      await fixed.stop();
      expect(fixed.logs.filter((line) => line.includes('file_mode_too_wide'))).toEqual([]);
    } finally {
      dispose();
    }
  }, 120_000);
});
