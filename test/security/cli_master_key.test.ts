import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, rotor, serveProcess } from '../helpers/cli.js';

/**
 * S2-05: one CLI command run without the master key must not brick an app and the next start. Every
 * command that opens the store runs the server's master-key check and refuses with one line.
 */
// SQLite files and CLI processes only: the PostgreSQL run of the security suites skips it.
describe.skipIf((process.env.ROTOR_TEST_STORE ?? 'sqlite') !== 'sqlite')('S2-05 every command checks the master key before touching keys', () => {
  let dir: string;
  let keyed: Record<string, string>;
  let bare: Record<string, string>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-s205-'));
    bare = { ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}` };
    keyed = { ...bare, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('S2-05 keys rotate, apps create and sessions issue without ROTOR_MASTER_KEY refuse with one line, create no key file, change nothing', async () => {
    expect((await rotor(['--json', 'apps', 'create', 'shop'], keyed)).code).toBe(0);
    const before = JSON.parse((await rotor(['--json', 'keys', 'list', 'shop'], keyed)).stdout).keys;
    for (const args of [['keys', 'rotate', 'shop'], ['apps', 'create', 'second'], ['sessions', 'issue', 'shop', 'alice'], ['app-keys', 'create', 'shop']]) {
      const res = await rotor(['--json', ...args], bare);
      expect(res.code, args.join(' ')).not.toBe(0);
      expect(res.stdout).toBe('');
      expect(res.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(res.stderr).toMatch(/ROTOR_MASTER_KEY/);
      expect(existsSync(join(dir, 'master.key')), 'no stray key file').toBe(false);
    }
    const after = JSON.parse((await rotor(['--json', 'keys', 'list', 'shop'], keyed)).stdout).keys;
    expect(after).toEqual(before);
    expect(JSON.parse((await rotor(['--json', 'apps', 'list'], keyed)).stdout).apps.map((a: any) => a.name)).toEqual(['shop']);
  });

  it('S2-05 with the right key the server starts and issues after those refusals', async () => {
    const port = await freePort();
    const server = await serveProcess({ ...keyed, ROTOR_ADMIN_TOKEN: 'an-admin-token-of-some-length' }, port);
    try {
      const issued = JSON.parse((await rotor(['--json', 'sessions', 'issue', 'shop', 'alice'], keyed)).stdout);
      const refreshed = await fetch(`${server.url}/v1/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: issued.refreshToken }) });
      expect(refreshed.status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('S2-05 a wrong ROTOR_MASTER_KEY is refused the same way', async () => {
    const res = await rotor(['--json', 'keys', 'rotate', 'shop'], { ...bare, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') });
    expect(res.code).not.toBe(0);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/master key does not decrypt/);
  });
});
