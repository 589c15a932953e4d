import { createRemoteJWKSet, jwtVerify } from 'jose';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, rotor, serveProcess } from './helpers/cli.js';

/** The README quickstart, step by step, against a real `rotor serve` on its default SQLite store. */
describe('README quickstart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-quickstart-'));
  let stop: (() => Promise<void>) | undefined;
  afterAll(async () => {
    await stop?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('create an app, issue a session, refresh it, verify the access token against the JWKS', async () => {
    const port = await freePort();
    const env = { ROTOR_PORT: String(port) };
    const server = await serveProcess(env, port, dir);
    stop = server.stop;
    // The default store: ./data/rotor.db with a generated master key, mode 0600.
    expect(existsSync(join(dir, 'data', 'rotor.db'))).toBe(true);
    expect(statSync(join(dir, 'data', 'master.key')).mode & 0o777).toBe(0o600);

    const created = await rotor(['--json', 'apps', 'create', 'shop'], env, undefined, dir);
    expect(created.code).toBe(0);
    const { appKey, id: appId } = JSON.parse(created.stdout) as { appKey: string; id: string };

    const issued = await fetch(`${server.url}/v1/apps/shop/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${appKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'alice@example.com', claims: { role: 'admin' } }),
    });
    expect(issued.status).toBe(201);
    const pair = await issued.json();

    const refreshed = await fetch(`${server.url}/v1/refresh`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: pair.refreshToken }),
    });
    expect(refreshed.status).toBe(200);
    const pair2 = await refreshed.json();
    expect(pair2.refreshToken).not.toBe(pair.refreshToken);

    const jwks = await (await fetch(`${server.url}/v1/apps/shop/jwks.json`)).json();
    const kid = JSON.parse(Buffer.from(pair2.accessToken.split('.')[0], 'base64url').toString()).kid;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(kid);

    // The README's verification: the app's own metadata, its JWKS, its issuer, its id as the audience.
    const meta = await (await fetch(`${server.url}/.well-known/oauth-authorization-server/apps/${appId}`)).json();
    const { payload } = await jwtVerify(pair2.accessToken, createRemoteJWKSet(new URL(meta.jwks_uri)), {
      issuer: meta.issuer, audience: appId, typ: 'at+jwt',
    });
    expect(meta.issuer).toBe(`http://127.0.0.1:${port}/apps/${appId}`);
    expect(payload).toMatchObject({ sub: 'alice@example.com', role: 'admin', sid: pair.sessionId });
  });
});
