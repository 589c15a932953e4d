import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertBuilt, CLI } from '../helpers/cli.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createRotor } from '../../src/library.js';

/**
 * Outside review, round four (docs/security.md, F4-…): configuration an operator or a host gets wrong is
 * refused at start in one line that names the variable, never taken in as something else.
 */
const BASE = { ROTOR_DATABASE_URL: 'sqlite::memory:' };
const refusal = (env: Record<string, string>): string => {
  try {
    loadConfig({ ...BASE, ...env });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error(`accepted: ${JSON.stringify(env)}`);
};

describe('F4-05 ROTOR_ISSUER is an http(s) URL with no credentials, query or fragment (RFC 8414 §2)', () => {
  it('F4-05 credentials, a query, a fragment or another scheme are refused; the message never repeats the value', () => {
    for (const issuer of ['https://ops:S3CRETPASS@auth.example.com', 'https://ops@auth.example.com', 'https://auth.example.com/p?tenant=1',
      'https://auth.example.com/p#frag', 'https://auth.example.com/?', 'javascript:alert(1)', 'file:///srv/rotor', 'ftp://auth.example.com', 'auth.example.com']) {
      const message = refusal({ ROTOR_ISSUER: issuer });
      expect(message, issuer).toMatch(/^ROTOR_ISSUER must/);
      expect(message).not.toContain('S3CRETPASS');
    }
    expect(loadConfig({ ...BASE, ROTOR_ISSUER: 'https://auth.example.com/rotor/' }).issuer).toBe('https://auth.example.com/rotor');
    expect(loadConfig({ ...BASE, ROTOR_ISSUER: 'http://localhost:8080' }).issuer).toBe('http://localhost:8080');
  });

  it('F4-05 createRotor refuses the same issuers', async () => {
    for (const issuer of ['https://ops:pw@example.com/auth', 'https://example.com/auth?x=1', 'https://example.com/auth#x', 'file:///auth']) {
      await expect(createRotor({ databaseUrl: 'sqlite::memory:', masterKey: Buffer.alloc(32, 7), issuer }), issuer).rejects.toThrow(/^createRotor: issuer must/);
    }
  });
});

describe('F4-06 ROTOR_WEBHOOK_URL and the shared secrets', () => {
  it('F4-06 a webhook URL with user:password@ is refused (fetch would refuse every delivery, and every event be lost)', () => {
    expect(refusal({ ROTOR_WEBHOOK_URL: 'https://hookuser:HOOKPASS@hooks.example.com/rotor' })).toMatch(/^ROTOR_WEBHOOK_URL must not carry user:password@/);
    expect(loadConfig({ ...BASE, ROTOR_WEBHOOK_URL: 'https://hooks.example.com/rotor' }).webhookUrl).toBe('https://hooks.example.com/rotor');
  });

  it('F4-07 an admin token or webhook secret that is short, has spaces or a line break, or repeats a few characters is refused', () => {
    for (const name of ['ROTOR_ADMIN_TOKEN', 'ROTOR_WEBHOOK_SECRET']) {
      for (const value of ['short', 'aaaaaaaaaaaaaaaaaaaa', 'abababababababababab', 'abcdabcdabcdabcdabcd', 'an-admin-token-0123456789\n', 'an admin token 0123456789', 'tôken-with-latin1-0123456789']) {
        expect(refusal({ [name]: value }), `${name}=${JSON.stringify(value)}`).toMatch(new RegExp(`^${name} must`));
      }
      expect(() => loadConfig({ ...BASE, [name]: 'Zm9vYmFyYmF6cXV4+/0123456789abcdefABCDEF=' })).not.toThrow();
    }
    expect(loadConfig(BASE).webhookSecret).toBeNull();
  });
});

describe('F4-07 numbers and names are taken only as written', () => {
  it('F4-07 ROTOR_RATE_LIMITS: no name of Object.prototype, exactly one =, each name once', () => {
    for (const value of ['hasOwnProperty=1', 'constructor=7,valueOf=3', '__proto__=5', 'toString=2', 'refreshFailuresPerIp=2=999999', 'refreshPerIp=60,refreshPerIp=6000']) {
      expect(refusal({ ROTOR_RATE_LIMITS: value }), value).toMatch(/^ROTOR_RATE_LIMITS: /);
    }
    expect(loadConfig({ ...BASE, ROTOR_RATE_LIMITS: 'refreshFailuresPerIp=2' }).rateLimits?.refreshFailuresPerIp).toBe(2);
  });

  it('F4-07 ports, worker counts and retention are decimal digits: 0x61A9, 1e1, 8080.0 are refused', () => {
    for (const [name, value] of [['ROTOR_PORT', '0x61A9'], ['ROTOR_PORT', '8080.0'], ['ROTOR_PORT', '-1'], ['ROTOR_WORKERS', '1e1'], ['ROTOR_WORKERS', '0b10'], ['ROTOR_REVOKED_RETENTION', '1e3']] as const) {
      expect(refusal({ [name]: value }), `${name}=${value}`).toMatch(new RegExp(`^${name} must be a whole number`));
    }
    expect(loadConfig({ ...BASE, ROTOR_PORT: ' 9090 ', ROTOR_WORKERS: '2' })).toMatchObject({ port: 9090, workers: 2 });
  });

  it('F4-10 ROTOR_LOG_LEVEL is one of pino\'s levels, refused by name at start (every command, every worker)', () => {
    for (const value of ['loud', 'verbose', '30', 'info,debug']) {
      expect(refusal({ ROTOR_LOG_LEVEL: value }), value).toBe('ROTOR_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent');
    }
    expect(loadConfig({ ...BASE, ROTOR_LOG_LEVEL: 'DEBUG' }).logLevel).toBe('debug');
    expect(loadConfig(BASE).logLevel).toBe('info');
  });
});

describe('F4-10 ROTOR_WORKERS > 1: a service that cannot start stops', () => {
  it('F4-10 workers that cannot listen (the port is taken) stop the primary with exit 1, not a respawn loop', async () => {
    assertBuilt();
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), 'rotor-workers-'));
    try {
      const started = Date.now();
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'serve'], {
          env: { PATH: process.env.PATH ?? '', ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}`, ROTOR_PORT: String(port), ROTOR_WORKERS: '2', ROTOR_LOG_LEVEL: 'silent' },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (chunk) => { stderr += String(chunk); });
        const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('close', (code) => { clearTimeout(kill); resolve({ code, stderr }); });
      });
      expect(result.code, result.stderr).toBe(1);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(result.stderr).toMatch(/could not start .*; stopping\n/);
      expect(result.stderr).not.toMatch(/starting another/);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
