import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, freePort, ROOT } from './helpers/cli.js';

/**
 * The package that installs anywhere (issue 17): `npm pack` makes a tarball; `npm install <tarball>` in an
 * empty folder far from this checkout (its node_modules are never on the resolution path) installs it
 * with its dependencies from the registry, and there `npx rotor serve` on SQLite passes the README
 * quickstart; `import … from 'rotor'` works and is typed.
 */
const run = (command: string, args: string[], cwd: string, env: Record<string, string> = {}, timeout = 150_000) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(command, args, { cwd, env: { ...cleanEnv(), ...env }, timeout, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });

/** The environment of a user's shell, less anything pointing into this checkout or at test settings. */
function cleanEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'USER', 'LANG', 'TMPDIR', 'npm_config_cache', 'NPM_CONFIG_CACHE', 'npm_config_registry', 'NPM_CONFIG_REGISTRY', 'SSL_CERT_FILE'];
  const env: Record<string, string> = {};
  for (const name of keep) if (process.env[name] !== undefined) env[name] = process.env[name]!;
  env.PATH = (env.PATH ?? '').split(':').filter((p) => !p.startsWith(ROOT)).join(':');
  return env;
}

/**
 * A directory holding the checkout's compiled better-sqlite3 in the tarball layout prebuild-install
 * unpacks (`build/Release/better_sqlite3.node`), named as its download would be.
 */
function localPrebuilds(work: string): string {
  const dir = join(work, 'prebuilds');
  mkdirSync(dir);
  const root = join(ROOT, 'node_modules', 'better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  execFileSync('tar', ['-czf', join(dir, name), '-C', root, 'build/Release/better_sqlite3.node']);
  return dir;
}

describe('npm pack → npm install <tarball> → npx rotor serve', () => {
  const work = mkdtempSync(join(tmpdir(), 'rotor-package-'));
  const app = join(work, 'my-service');
  let tarball = '';
  let server: ChildProcess | null = null;
  const timings: Record<string, number> = {};
  let sqliteBinary = '';

  beforeAll(async () => {
    assertBuilt();
    mkdirSync(app);
    let t = Date.now();
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT);
    expect(packed.code, packed.stderr).toBe(0);
    tarball = join(work, JSON.parse(packed.stdout)[0].filename);
    timings.pack = Date.now() - t;
    t = Date.now();
    // better-sqlite3's install script fetches a prebuilt binary from GitHub's releases, as on a user's
    // machine, and compiles SQLite only when it cannot. This machine does not reach GitHub, so it would
    // compile for minutes on every core, starving the tests running beside this one. The checkout's own
    // binary, offered where prebuild-install looks for local prebuilds (as a site without GitHub access
    // would mirror it), keeps the real install script on its real path; a registry version other than the
    // checkout's finds no file there and compiles, slower but the same.
    const prebuilds = localPrebuilds(work);
    const installed = await run('npm', ['install', tarball, '--no-audit', '--no-fund', '--loglevel=error'], app, {
      JOBS: 'max', npm_config_better_sqlite3_local_prebuilds: prebuilds,
    });
    expect(installed.code, installed.stderr).toBe(0);
    timings.install = Date.now() - t;
    sqliteBinary = existsSync(join(app, 'node_modules', 'better-sqlite3', 'build', 'Release', 'obj')) ? 'compiled' : 'prebuilt';
  }, 170_000);
  afterAll(async () => {
    if (server && server.exitCode === null && server.pid !== undefined) {
      const exited = new Promise((resolve) => server!.once('exit', resolve));
      // The whole group: killing npx alone would leave `rotor serve` running.
      process.kill(-server.pid, 'SIGTERM');
      await exited;
    }
    rmSync(work, { recursive: true, force: true });
    console.log(`[measured] npm pack ${timings.pack} ms, npm install <tarball> ${timings.install} ms (better-sqlite3 ${sqliteBinary}), serve + quickstart ${timings.quickstart} ms`);
  });

  it('the tarball holds the built package and nothing of the checkout\'s tests or sources', async () => {
    const listed = await run('tar', ['-tzf', tarball], work);
    const files = listed.stdout.split('\n').filter(Boolean);
    expect(files).toContain('package/dist/src/cli/main.js');
    expect(files).toContain('package/dist/src/index.js');
    expect(files).toContain('package/dist/src/index.d.ts');
    expect(files).toContain('package/packages/client/dist/rotor-client.js');
    expect(files.filter((f) => /^package\/(test|src|bench|node_modules)\//.test(f))).toEqual([]);
    expect(statSync(tarball).size).toBeLessThan(2 * 1024 * 1024);
    // Installed from the registry into the folder itself, not linked to this checkout.
    expect(existsSync(join(app, 'node_modules', 'rotor', 'dist', 'src', 'cli', 'main.js'))).toBe(true);
    expect(existsSync(join(app, 'node_modules', 'fastify', 'package.json'))).toBe(true);
    expect(existsSync(join(app, 'node_modules', 'vitest'))).toBe(false);
  });

  it('npx rotor serve on SQLite passes the README quickstart', async () => {
    const started = Date.now();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const adminToken = 'package-test-admin-token-0123456789';
    const env = { ROTOR_PORT: String(port), ROTOR_LOG_LEVEL: 'warn', ROTOR_ADMIN_TOKEN: adminToken };
    // Its own process group: npx starts `rotor serve` as a child, which must end with it (see afterAll).
    server = spawn('npx', ['rotor', 'serve'], { cwd: app, env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    server.stderr?.on('data', (chunk) => { stderr += String(chunk); });
    for (let i = 0; ; i += 1) {
      if (server.exitCode !== null || i > 300) throw new Error(`npx rotor serve did not come up: ${stderr}`);
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(statSync(join(app, 'data', 'master.key')).mode & 0o777).toBe(0o600);

    // 1. Create an app; its app key is printed once.
    const created = await run('npx', ['rotor', '--json', 'apps', 'create', 'shop'], app, env, 30_000);
    expect(created.code, created.stderr).toBe(0);
    const { appKey, id: appId } = JSON.parse(created.stdout) as { appKey: string; id: string };
    // 2. Issue a session.
    const issued = await fetch(`${url}/v1/apps/shop/sessions`, {
      method: 'POST', headers: { authorization: `Bearer ${appKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'alice@example.com', claims: { role: 'admin' } }),
    });
    expect(issued.status).toBe(201);
    const pair = await issued.json();
    // 3. Refresh it.
    const refreshed = await fetch(`${url}/v1/refresh`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: pair.refreshToken }),
    });
    expect(refreshed.status).toBe(200);
    const pair2 = await refreshed.json();
    // 4. The JWKS, and the README's verification with jose.
    const jwks = await (await fetch(`${url}/v1/apps/shop/jwks.json`)).json();
    const kid = JSON.parse(Buffer.from(pair2.accessToken.split('.')[0], 'base64url').toString()).kid;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(kid);
    const meta = await (await fetch(`${url}/.well-known/oauth-authorization-server/apps/${appId}`)).json();
    const { payload } = await jwtVerify(pair2.accessToken, createRemoteJWKSet(new URL(meta.jwks_uri)), { issuer: meta.issuer, audience: appId, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: 'alice@example.com', role: 'admin', sid: pair.sessionId });
    // The browser client ships in the package too.
    const sdk = await fetch(`${url}/sdk/rotor-client.js`);
    expect(sdk.status).toBe(200);
    expect(await sdk.text()).toMatch(/createRotorClient/);
    // So does the console: the page, every module it imports, and the admin API behind it.
    const page = await fetch(`${url}/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
    const main = await (await fetch(`${url}/console/ui/main.js`)).text();
    for (const [, module] of main.matchAll(/from '\.\/([a-z_]+\.js)'/g)) expect((await fetch(`${url}/console/ui/${module}`)).status, module).toBe(200);
    const apps = await (await fetch(`${url}/admin/apps`, { headers: { authorization: `Bearer ${adminToken}` } })).json();
    expect(apps.apps.map((a: { name: string }) => a.name)).toEqual(['shop']);
    timings.quickstart = Date.now() - started;
  }, 60_000);

  it('import { createRotor, rotorPlugin } from \'rotor\' works in the installed package, and is typed', async () => {
    writeFileSync(join(app, 'embed.mjs'), `
      import { createRotor, rotorPlugin } from 'rotor';
      import { randomBytes } from 'node:crypto';
      const rotor = await createRotor({ databaseUrl: 'sqlite::memory:', masterKey: randomBytes(32).toString('base64'), issuer: 'https://example.com/auth' });
      await rotor.apps.create({ name: 'embedded' });
      const pair = await rotor.issue('embedded', { subject: 'bob' });
      const next = await rotor.refresh(pair.refreshToken);
      console.log(JSON.stringify({ plugin: typeof rotorPlugin, same: next.sessionId === pair.sessionId }));
      await rotor.close();
    `);
    const embedded = await run(process.execPath, ['embed.mjs'], app, {}, 30_000);
    expect(embedded.code, embedded.stderr).toBe(0);
    expect(JSON.parse(embedded.stdout)).toEqual({ plugin: 'function', same: true });

    // The declarations are the package's: a consumer's mistakes are type errors. (tsc is this checkout's
    // tool; what it resolves `rotor` to is the installed package.)
    writeFileSync(join(app, 'consumer.ts'), `
      import { createRotor, type TokenPair } from 'rotor';
      export async function main(): Promise<TokenPair> {
        const rotor = await createRotor({ databaseUrl: 'sqlite::memory:', masterKey: 'x', issuer: 'https://example.com/auth' });
        // @ts-expect-error issuer is required
        await createRotor({ databaseUrl: 'sqlite::memory:', masterKey: 'x' });
        // @ts-expect-error subject must be a string
        await rotor.issue('app', { subject: 42 });
        return rotor.issue('app', { subject: 'alice' });
      }
    `);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { noEmit: true, strict: true, skipLibCheck: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: [] },
      files: ['consumer.ts'],
    }));
    const tsc = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app, {}, 60_000);
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);
    expect(readdirSync(join(app, 'node_modules', 'rotor', 'dist', 'src')).filter((f) => f.endsWith('.d.ts')).length).toBeGreaterThan(3);
  }, 90_000);
});
