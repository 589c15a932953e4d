import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRotor, http, startRotor, type HttpResult, type RotorProcess } from './helpers/rotor_process.js';
import { createTestDatabase } from './store/pg_harness.js';

/**
 * Several real Rotor processes on one store: two instances on one PostgreSQL database, ROTOR_WORKERS=2
 * on PostgreSQL and on one SQLite file. Every renewal invariant holds across processes.
 */

const ADMIN_TOKEN = 'multi-instance-admin-token-0123';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

let build: Awaited<ReturnType<typeof buildRotor>>;
const running: RotorProcess[] = [];

beforeAll(async () => {
  build = await buildRotor();
}, 60_000);

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  build?.dispose();
});

async function start(env: Record<string, string>): Promise<RotorProcess> {
  // Rate limits are their own subject (and would count the deliberate losers of these races as
  // failed refreshes); here they are off.
  const p = await startRotor(build.main, {
    ROTOR_ADMIN_TOKEN: ADMIN_TOKEN, ROTOR_ISSUER: 'http://rotor.multi.test', ROTOR_RATE_LIMITS: 'off', ...env,
  });
  running.push(p);
  return p;
}

async function createApp(url: string, name: string, policy: Record<string, unknown> = {}) {
  const res = await http(url, 'POST', '/admin/apps', { json: { name, policy }, headers: admin });
  if (res.status !== 201) throw new Error(`createApp: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { name: string; appKey: string };
}

async function issue(url: string, app: { name: string; appKey: string }, subject = 'alice') {
  const res = await http(url, 'POST', `/v1/apps/${app.name}/sessions`, { json: { subject }, headers: { authorization: `Bearer ${app.appKey}` } });
  if (res.status !== 201) throw new Error(`issue: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { refreshToken: string; accessToken: string; sessionId: string };
}

/** 50 concurrent refreshes of one token, spread round-robin over the given base URLs. */
function race(urls: string[], refreshToken: string, n = 50): Promise<HttpResult[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => http(urls[i % urls.length]!, 'POST', '/v1/refresh', { json: { refreshToken } })));
}

/** A GET on a connection of its own, so the cluster's round-robin hands it to any worker. */
function freshConnectionGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    // A connection handed to the worker that just died is never answered: give up on it, try again.
    req.setTimeout(2000, () => req.destroy(new Error('no answer')));
  });
}

function expectGraceOutcome(results: HttpResult[], parent: string): void {
  expect(results.filter((r) => r.status >= 500)).toEqual([]);
  expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
  const successors = new Set(results.map((r) => r.body.refreshToken));
  expect(successors.size).toBe(1);
  expect(successors.has(parent)).toBe(false);
}

function expectOneWinner(results: HttpResult[]): void {
  expect(results.filter((r) => r.status >= 500)).toEqual([]);
  expect(results.filter((r) => r.status === 200)).toHaveLength(1);
  for (const r of results.filter((x) => x.status !== 200)) expect(r.status).toBe(400);
}

describe('two instances on one PostgreSQL database', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let a: RotorProcess;
  let b: RotorProcess;

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = { ROTOR_DATABASE_URL: database.url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') };
    // Both start at once: the migration runs exactly once under the advisory lock.
    [a, b] = await Promise.all([start(env), start(env)]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await database?.drop();
  });

  it('50 concurrent refreshes of one token across both, with grace: all 200, one successor', async () => {
    const app = await createApp(a.url, 'pg-grace');
    const { refreshToken } = await issue(b.url, app);
    const results = await race([a.url, b.url], refreshToken);
    expectGraceOutcome(results, refreshToken);
    // The successor works on either instance.
    expect((await http(b.url, 'POST', '/v1/refresh', { json: { refreshToken: results[0]!.body.refreshToken } })).status).toBe(200);
  });

  it('50 concurrent refreshes across both, without grace: exactly one wins, never a 5xx', async () => {
    const app = await createApp(a.url, 'pg-strict', { reuseGrace: 0 });
    const { refreshToken } = await issue(a.url, app);
    expectOneWinner(await race([a.url, b.url], refreshToken));
  });

  it('reuse detected on one instance revokes the session on the other at once', async () => {
    const app = await createApp(b.url, 'pg-reuse', { reuseGrace: 0 });
    const first = await issue(a.url, app);
    const renewed = await http(a.url, 'POST', '/v1/refresh', { json: { refreshToken: first.refreshToken } });
    expect(renewed.status).toBe(200);
    const replay = await http(b.url, 'POST', '/v1/refresh', { json: { refreshToken: first.refreshToken } });
    expect(replay.status).toBe(400);
    // The successor, held by the legitimate client, is dead on the first instance too.
    const after = await http(a.url, 'POST', '/v1/refresh', { json: { refreshToken: renewed.body.refreshToken } });
    expect(after.status).toBe(400);
    const introspected = await http(a.url, 'POST', '/v1/introspect', {
      json: { token: renewed.body.accessToken }, headers: { authorization: `Bearer ${app.appKey}` },
    });
    expect(introspected.status).toBe(200);
    expect(introspected.body.active).toBe(false);
  });

  it('a revocation on one instance is seen by the other at once', async () => {
    const app = await createApp(a.url, 'pg-logout');
    const pair = await issue(a.url, app);
    const introspect = (url: string) => http(url, 'POST', '/v1/introspect', {
      json: { token: pair.accessToken }, headers: { authorization: `Bearer ${app.appKey}` },
    });
    expect((await introspect(a.url)).body.active).toBe(true);
    expect((await http(b.url, 'POST', '/v1/revoke', { json: { token: pair.refreshToken } })).status).toBe(200);
    expect((await http(a.url, 'POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } })).status).toBe(400);
    expect((await introspect(a.url)).body.active).toBe(false); // F-12: at once, on the other instance
  });
});

describe('rotor migrate on PostgreSQL', () => {
  it('several processes migrating one empty database at once apply each version exactly once', async () => {
    const database = await createTestDatabase();
    const direct = new pg.Client({ connectionString: database.url });
    await direct.connect();
    try {
      const env = { PATH: process.env.PATH ?? '', ROTOR_DATABASE_URL: database.url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') };
      const runs = await Promise.all(Array.from({ length: 4 }, () => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [build.main, 'migrate', '--json'], { env }, (err, stdout, stderr) => {
          resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
        });
      })));
      for (const run of runs) {
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        expect(JSON.parse(run.stdout)).toMatchObject({ migrated: true, store: 'postgres' });
      }
      const versions = (await direct.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
      expect(versions).toEqual(versions.map((_v, i) => i + 1));
      expect(versions.length).toBeGreaterThan(0);
    } finally {
      await direct.end();
      await database.drop();
    }
  });
});

describe('ROTOR_WORKERS=2: one port served by two processes', () => {
  it('on PostgreSQL: the 50-way race holds with and without grace, and both workers answer', async () => {
    const database = await createTestDatabase();
    try {
      const p = await start({ ROTOR_DATABASE_URL: database.url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64'), ROTOR_WORKERS: '2' });
      try {
        const graceApp = await createApp(p.url, 'w-grace');
        const strictApp = await createApp(p.url, 'w-strict', { reuseGrace: 0 });
        const g = await issue(p.url, graceApp);
        expectGraceOutcome(await race([p.url], g.refreshToken), g.refreshToken);
        const s = await issue(p.url, strictApp);
        expectOneWinner(await race([p.url], s.refreshToken));
        // Both workers serve (a race's pooled connections may all have landed on one): fresh connections, bounded.
        for (let i = 0; i < 100 && p.servingPids().size < 2; i += 1) await freshConnectionGet(`${p.url}/healthz`).catch(() => null);
        const workers = p.servingPids();
        expect(workers.size).toBe(2);

        // A worker that dies is replaced; the other one answers meanwhile. (Keep-alive connections
        // the dead worker owned are reset; a client retries those on a new connection.)
        const [victim] = [...workers];
        process.kill(victim!, 'SIGKILL');
        let replaced = false;
        let answered = 0;
        for (let attempt = 0; attempt < 200 && !replaced; attempt += 1) {
          const status = await freshConnectionGet(`${p.url}/healthz`).catch(() => null);
          if (status !== null) {
            expect(status).toBe(200);
            answered += 1;
          }
          replaced = [...p.servingPids()].some((pid) => !workers.has(pid));
          if (!replaced) await new Promise((r) => setTimeout(r, 50));
        }
        expect(replaced).toBe(true);
        expect(answered).toBeGreaterThan(0);
      } finally {
        await p.stop();
      }
      expect(p.child.exitCode).toBe(0);
    } finally {
      await database.drop();
    }
  });

  it('on one SQLite file: WAL, busy timeout and BEGIN IMMEDIATE keep the 50-way race exact across processes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-multi-'));
    try {
      const p = await start({ ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}`, ROTOR_WORKERS: '2' });
      try {
        const graceApp = await createApp(p.url, 'sq-grace');
        const strictApp = await createApp(p.url, 'sq-strict', { reuseGrace: 0 });
        for (let round = 0; round < 3; round += 1) {
          const g = await issue(p.url, graceApp, `g${round}`);
          expectGraceOutcome(await race([p.url], g.refreshToken), g.refreshToken);
          const s = await issue(p.url, strictApp, `s${round}`);
          expectOneWinner(await race([p.url], s.refreshToken));
        }
        // Both workers serve (a race's pooled connections may all have landed on one): fresh connections, bounded.
        for (let i = 0; i < 100 && p.servingPids().size < 2; i += 1) await freshConnectionGet(`${p.url}/healthz`).catch(() => null);
        expect(p.servingPids().size).toBe(2);
      } finally {
        await p.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
