import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotor } from './helpers/cli.js';

/** SPEC §5 `--allowed-origins O,O`: policy allowedOrigins from the CLI, and ROTOR_CORS_ORIGINS refused in one line. */
describe('rotor CLI and browser origins', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-cli-origins-'));
    env = { ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}` };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--allowed-origins sets, canonicalises and (with off) clears policy allowedOrigins; a bad origin is one line on stderr', async () => {
    const created = await rotor(['--json', 'apps', 'create', 'spa', '--allowed-origins', 'HTTPS://App.Example.com:443, http://localhost:5173'], env);
    expect(created.stderr).toBe('');
    expect(JSON.parse(created.stdout).policy.allowedOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    const bad = await rotor(['--json', 'apps', 'update', 'spa', '--allowed-origins', 'https://app.example.com/'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/allowedOrigins/);
    const off = await rotor(['--json', 'apps', 'update', 'spa', '--allowed-origins', 'off'], env);
    expect(JSON.parse(off.stdout).policy.allowedOrigins).toBeNull();
  });

  it('a bad ROTOR_CORS_ORIGINS stops every command with one line naming it', async () => {
    const res = await rotor(['--json', 'apps', 'list'], { ...env, ROTOR_CORS_ORIGINS: 'https://app.example.com,null' });
    expect(res.code).not.toBe(0);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/ROTOR_CORS_ORIGINS: "null" is not an exact origin/);
  });
});
