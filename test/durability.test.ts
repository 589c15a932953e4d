import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, assertBuilt, freePort } from './helpers/cli.js';

const ADMIN = 'durability-admin-token-123';

/** Starts `rotor serve`; `kill()` sends SIGKILL, as a crash would. */
async function start(dir: string, port: number) {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, 'serve'], {
    cwd: dir, stdio: 'ignore',
    env: { PATH: process.env.PATH ?? '', ROTOR_PORT: String(port), ROTOR_ADMIN_TOKEN: ADMIN, ROTOR_LOG_LEVEL: 'warn' },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i += 1) {
    try { if ((await fetch(`${url}/readyz`)).ok) break; } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    kill: () => new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.kill('SIGKILL'); }),
  };
}

const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
};

describe('durability across SIGKILL (N1, N4)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-durable-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a revocation and a rotation that answered survive kill -9 and restart', async () => {
    const port = await freePort();
    let server = await start(dir, port);
    const app = await post(`${server.url}/admin/apps`, { name: 'durable', policy: { reuseGrace: 0 } }, { authorization: `Bearer ${ADMIN}` });
    const auth = { authorization: `Bearer ${app.body.appKey}` };
    const doomed = await post(`${server.url}/v1/apps/durable/sessions`, { subject: 'a' }, auth);
    const kept = await post(`${server.url}/v1/apps/durable/sessions`, { subject: 'b' }, auth);
    const rotated = await post(`${server.url}/v1/refresh`, { refreshToken: kept.body.refreshToken });
    expect(rotated.status).toBe(200);
    expect((await post(`${server.url}/v1/revoke`, { token: doomed.body.refreshToken })).status).toBe(200);
    await server.kill();

    server = await start(dir, port);
    try {
      expect((await post(`${server.url}/v1/refresh`, { refreshToken: doomed.body.refreshToken })).body.detail).toBe('revoked');
      // The latest token the client holds works; its consumed parent is still recognised as reuse.
      const next = await post(`${server.url}/v1/refresh`, { refreshToken: rotated.body.refreshToken });
      expect(next.status).toBe(200);
      const replay = await post(`${server.url}/v1/refresh`, { refreshToken: kept.body.refreshToken });
      expect(replay.body.detail).toBe('reused');
    } finally {
      await server.kill();
    }
  });
});

describe('refusing a bad start (F-13)', () => {
  it('refuses to start with a master key that does not open the stored signing keys', async () => {
    const { rotor } = await import('./helpers/cli.js');
    const dir = mkdtempSync(join(tmpdir(), 'rotor-badkey-'));
    try {
      const env = { ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}` };
      expect((await rotor(['apps', 'create', 'k'], env)).code).toBe(0);
      const wrong = Buffer.alloc(32, 7).toString('base64');
      const port = await freePort();
      const res = await rotor(['serve'], { ...env, ROTOR_MASTER_KEY: wrong, ROTOR_PORT: String(port) });
      expect(res.code).not.toBe(0);
      expect(res.stderr).toMatch(/master key does not decrypt/);
      const short = await rotor(['serve'], { ...env, ROTOR_MASTER_KEY: 'c2hvcnQ=', ROTOR_PORT: String(port) });
      expect(short.code).not.toBe(0);
      expect(short.stderr).toMatch(/ROTOR_MASTER_KEY must be 32 bytes/);
      const pg = await rotor(['serve'], { ROTOR_DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test', ROTOR_PORT: String(port) });
      expect(pg.code).not.toBe(0);
      expect(pg.stderr).toMatch(/ROTOR_MASTER_KEY is required with PostgreSQL/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('refusing weak stored keys (F-13, J-29)', () => {
  it('refuses to start with an HS256 secret under 32 bytes, an RSA key under 2048 bits, or an unknown algorithm', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { MasterKey } = await import('../src/crypto/master_key.js');
    const { SqliteStore } = await import('../src/store/sqlite/sqlite_store.js');
    const { rotor: cli } = await import('./helpers/cli.js');
    const masterText = Buffer.alloc(32, 3).toString('base64');
    const master = MasterKey.fromBase64(masterText);
    const cases: [string, string, Buffer][] = [
      ['HS256', 'shorter than 32 bytes', Buffer.alloc(16, 1)],
      ['RS256', 'at least 2048 are required', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'der', type: 'pkcs8' })],
      ['XX999', 'unknown algorithm', Buffer.alloc(32, 1)],
    ];
    for (const [alg, message, secret] of cases) {
      const dir = mkdtempSync(join(tmpdir(), 'rotor-weak-'));
      try {
        const env = { ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}`, ROTOR_MASTER_KEY: masterText };
        const created = await cli(['--json', 'apps', 'create', 'weak'], env);
        expect(created.code).toBe(0);
        const appId = JSON.parse(created.stdout).id as string;
        // A key that Rotor itself would never make, as a tampered or imported database could hold.
        const store = new SqliteStore(join(dir, 'rotor.db'));
        const active = (await store.listSigningKeys(appId)).find((k) => k.state === 'active');
        const kid = '01J0000000000000000000WEAK';
        await store.rotateSigningKey({
          appId, expectActiveKid: active?.kid ?? null, now: Date.now(), publishUntil: Date.now() + 3_600_000,
          next: { kid, appId, alg: alg as never, state: 'active', publicJwk: null, privateSealed: master.seal('signing-key', secret, kid), createdAt: Date.now(), retiredAt: null, publishUntil: null, revokedAt: null },
        });
        await store.close();
        const res = await cli(['serve'], { ...env, ROTOR_PORT: String(await freePort()) });
        expect(res.code, alg).not.toBe(0);
        expect(res.stderr, alg).toContain(message);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
