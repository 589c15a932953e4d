import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { CLI, rotor } from './helpers/cli.js';

describe('rotor CLI (--json on every command, no server needed)', () => {
  let dir: string;
  let env: Record<string, string>;
  const run = async (...args: string[]) => {
    const res = await rotor(['--json', ...args], env);
    if (res.code !== 0) throw new Error(`rotor ${args.join(' ')} failed (${res.code}): ${res.stderr}`);
    expect(res.stderr).toBe('');
    return JSON.parse(res.stdout);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-cli-'));
    env = { ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}` };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('migrate, and a master key file of mode 0600 beside the database', async () => {
    expect(await run('migrate')).toEqual({ migrated: true, store: 'sqlite' });
    expect(statSync(join(dir, 'master.key')).mode & 0o777).toBe(0o600);
  });

  it('apps create and update set the OAuth and DPoP policy (--audience, --dpop, --dpop-nonce / --no-dpop-nonce)', async () => {
    const created = await run('apps', 'create', 'cli-dpop', '--dpop', 'required', '--dpop-nonce', '--audience', 'api://orders');
    expect(created.policy).toMatchObject({ dpop: 'required', dpopNonce: true, audience: 'api://orders' });
    const updated = await run('apps', 'update', 'cli-dpop', '--no-dpop-nonce', '--audience', 'off');
    expect(updated.policy).toMatchObject({ dpop: 'required', dpopNonce: false, audience: null });
    const bad = await rotor(['--json', 'apps', 'update', 'cli-dpop', '--dpop', 'sometimes'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    // DPoP binds native apps only: a dialect app can neither require it nor demand its nonces.
    const dialectNonce = await rotor(['--json', 'apps', 'create', 'cli-abit-nonce', '--profile', 'abitmedia', '--dpop-nonce'], env);
    expect(dialectNonce.code).toBe(2);
    expect(dialectNonce.stderr.trim().split('\n')).toHaveLength(1);
    expect(dialectNonce.stderr).toMatch(/abitmedia apps cannot demand DPoP nonces/);
    await run('apps', 'create', 'cli-abit', '--profile', 'abitmedia');
    const updateNonce = await rotor(['--json', 'apps', 'update', 'cli-abit', '--dpop-nonce'], env);
    expect(updateNonce.code).toBe(2);
    expect(updateNonce.stderr).toMatch(/abitmedia apps cannot demand DPoP nonces/);
    expect((await run('apps', 'show', 'cli-abit')).policy.dpopNonce).toBe(false);
  });

  it('apps create/list/show/update/delete', async () => {
    const created = await run('apps', 'create', 'cli-app', '--access-ttl', '10m', '--refresh-ttl', '7d', '--reuse-grace', '5s',
      '--session-max-age', '30d', '--session-idle-timeout', 'off', '--binding', 'record', '--alg', 'EdDSA', '--key-rotation', '30d', '--refresh-not-before', '0');
    expect(Object.keys(created).sort()).toEqual(['appKey', 'id', 'name', 'policy', 'profile']);
    expect(created).toMatchObject({ name: 'cli-app', profile: 'native' });
    expect(created.appKey).toMatch(/^ak_/);
    expect(created.policy).toMatchObject({ accessTtl: 600, refreshTtl: 604800, reuseGrace: 5, sessionMaxAge: 2592000, sessionIdleTimeout: null, binding: 'record', alg: 'EdDSA', keyRotationPeriod: 2592000 });
    expect((await run('apps', 'list')).apps.map((a: any) => a.name)).toContain('cli-app');
    expect((await run('apps', 'show', created.id)).name).toBe('cli-app');
    expect((await run('apps', 'update', 'cli-app', '--access-ttl', '5m')).policy.accessTtl).toBe(300);
    await run('apps', 'create', 'doomed');
    expect(await run('apps', 'delete', 'doomed')).toEqual({ deleted: true });
    const missing = await rotor(['--json', 'apps', 'show', 'doomed'], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stdout).toBe('');
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/app_not_found/);
  });

  it('app-keys create/revoke', async () => {
    const key = await run('app-keys', 'create', 'cli-app');
    expect(key.appKey).toMatch(/^ak_/);
    expect(await run('app-keys', 'revoke', 'cli-app', key.id)).toEqual({ revoked: true, id: key.id });
  });

  it('keys list/rotate/revoke', async () => {
    const before = (await run('keys', 'list', 'cli-app')).keys;
    expect(before.filter((k: any) => k.state === 'active')).toHaveLength(1);
    const rotated = await run('keys', 'rotate', 'cli-app');
    expect(rotated.state).toBe('active');
    const after = (await run('keys', 'list', 'cli-app')).keys;
    expect(after.find((k: any) => k.kid === before[0].kid).state).toBe('retiring');
    expect(await run('keys', 'revoke', 'cli-app', before[0].kid)).toEqual({ revoked: true, kid: before[0].kid });
    for (const k of after) expect(JSON.stringify(k)).not.toMatch(/"d"|private/i);
  });

  it('subjects set (password from stdin, Ed25519 key)/disable/enable/delete', async () => {
    const res = await rotor(['--json', 'subjects', 'set', 'cli-app', 'alice', '--claims', '{"role":"admin"}', '--password-stdin',
      '--ed25519-public-key', '7fbedb314a9b0c00caef967ac5cabb982ec45da828a0c58a9aafc854f32422ac'], env, 'hunter2\n');
    expect(res.code).toBe(0);
    const subject = JSON.parse(res.stdout);
    expect(subject).toMatchObject({ subject: 'alice', claims: { role: 'admin' }, status: 'active', hasPassword: true });
    expect(res.stdout).not.toContain('hunter2');
    expect((await run('subjects', 'disable', 'cli-app', 'alice')).status).toBe('disabled');
    expect((await run('subjects', 'enable', 'cli-app', 'alice')).status).toBe('active');
    await run('subjects', 'set', 'cli-app', 'zed');
    expect(await run('subjects', 'delete', 'cli-app', 'zed')).toEqual({ deleted: true });
  });

  it('sessions issue/list/revoke/revoke-all', async () => {
    const pair = await run('sessions', 'issue', 'cli-app', 'bob', '--claims', '{"plan":"pro"}');
    expect(Object.keys(pair).sort()).toEqual(['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'sessionId', 'tokenType']);
    await run('sessions', 'issue', 'cli-app', 'bob');
    const listed = (await run('sessions', 'list', 'cli-app', '--subject', 'bob')).sessions;
    expect(listed).toHaveLength(2);
    expect(await run('sessions', 'revoke', 'cli-app', pair.sessionId)).toEqual({ revoked: true, id: pair.sessionId });
    expect(await run('sessions', 'revoke-all', 'cli-app', '--subject', 'bob')).toEqual({ revoked: 1 });
  });

  it('bad input: one line on stderr saying what is wrong, non-zero exit', async () => {
    const bad = await rotor(['apps', 'create', 'x', '--access-ttl', 'soon'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--access-ttl must be/);
    const name = await rotor(['apps', 'create', 'Bad Name'], env);
    expect(name.code).not.toBe(0);
    expect(name.stderr).toMatch(/name must match/);
    const claims = await rotor(['sessions', 'issue', 'cli-app', 'bob', '--claims', '{"sub":"x"}'], env);
    expect(claims.stderr).toMatch(/reserved claim "sub"/);
    const config = await rotor(['apps', 'list'], { ROTOR_DATABASE_URL: 'mysql://nope' });
    expect(config.code).not.toBe(0);
    expect(config.stderr).toMatch(/ROTOR_DATABASE_URL must be/);
  });

  it('F4-09 bad input on the command line exits 2 with one line, commander\'s own refusals included', async () => {
    for (const args of [['--bogus'], ['--jsn', 'apps', 'list'], ['apps', 'crate', 'x'], ['bogus-command'], ['sessions', 'list', 'cli-app'], ['apps', 'create', 'x', '--access-ttl', '5x'],
      ['apps', 'create', 'x', '--binding', 'weird'], ['apps', 'create', 'Bad Name'], ['apps', 'show']]) {
      const res = await rotor(args, env);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stdout).toBe('');
      expect(res.stderr.trim().split('\n'), args.join(' ')).toEqual([expect.stringMatching(/^rotor: /)]);
    }
    expect((await rotor(['--help'], env)).code).toBe(0);
    // A configuration error is not the command line's: 1 (docs/config.md).
    expect((await rotor(['apps', 'list'], { ...env, ROTOR_LOG_LEVEL: 'loud' })).code).toBe(1);
  });

  it('F4-08 a closed stdout is one line and exit 1, not a stack trace; the command took effect and the store was closed', async () => {
    const closed = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, '--json', 'sessions', 'issue', 'cli-app', 'epipe'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy(); // the reader went away before anything was written
      let stderr = '';
      child.stderr.on('data', (chunk) => { stderr += String(chunk); });
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(closed.code).toBe(1);
    expect(closed.stderr).toBe('rotor: stdout was closed (EPIPE) before the output was written; the command itself took effect\n');
    expect((await run('sessions', 'list', 'cli-app', '--subject', 'epipe')).sessions).toHaveLength(1);
  });
});
