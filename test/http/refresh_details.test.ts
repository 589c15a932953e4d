import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRotor } from '../../src/runtime.js';
import { admin, createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * SPEC §4.1: `invalid_refresh_token`'s detail names the reason, also for a dialect app's JWT refresh
 * token presented at /v1/refresh (found by an acceptance audit: both reasons below read `malformed`).
 */
describe('/v1/refresh names the reason for a genuine JWT refresh token it refuses', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());
  const refresh = (refreshToken: string, headers: Record<string, string> = {}) => server.call('POST', '/v1/refresh', { json: { refreshToken }, headers });

  it('before its not-before (JWTPlus, 60 s): not_yet_valid with the app key, invalid_app_key without it; nothing consumed', async () => {
    const app = await createApp(server, { name: 'early-jwtplus', profile: 'jwtplus' });
    const pair = await issue(server, app);
    const early = await refresh(pair.refreshToken, { authorization: `Bearer ${app.appKey}` });
    expect(early.status).toBe(400);
    expect(early.body).toMatchObject({ code: 'invalid_refresh_token', detail: 'not_yet_valid' });
    const keyless = await refresh(pair.refreshToken);
    expect(keyless.status).toBe(401);
    expect(keyless.body.code).toBe('invalid_app_key');
    // A not-before further ahead than the app's own delay was never Rotor's: still malformed (a forgery).
    const [header, payload, signature] = pair.refreshToken.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const moved = `${header}.${Buffer.from(JSON.stringify({ ...claims, nbf: claims.nbf + 3600 })).toString('base64url')}.${signature}`;
    expect((await refresh(moved, { authorization: `Bearer ${app.appKey}` })).body.detail).toBe('malformed');
  });

  it('signed by a revoked key (Abitmedia): revoked, not malformed; a forgery naming that key stays malformed', async () => {
    const app = await createApp(server, { name: 'dead-key-abit', profile: 'abitmedia' });
    const pair = await issue(server, app);
    const [{ kid }] = (await server.call('GET', `/admin/apps/${app.id}/keys`, { headers: admin })).body.keys as { kid: string }[];
    expect((await server.call('POST', `/admin/apps/${app.id}/keys/rotate`, { headers: admin })).status).toBe(200);
    expect((await server.call('POST', `/admin/apps/${app.id}/keys/${kid}/revoke`, { headers: admin })).status).toBe(200);
    const dead = await refresh(pair.refreshToken);
    expect(dead.status).toBe(400);
    expect(dead.body).toMatchObject({ code: 'invalid_refresh_token', detail: 'revoked' });
    const forged = `${pair.refreshToken.slice(0, pair.refreshToken.lastIndexOf('.'))}.${Buffer.alloc(32, 1).toString('base64url')}`;
    expect((await refresh(forged)).body.detail).toBe('malformed');
    // The dialect's own endpoint answers as the peer does, whatever the reason.
    expect((await server.call('POST', '/v1/refreshToken', { json: { refreshToken: pair.refreshToken } })).status).toBe(400);
  });

  it('signed by a key another instance revoked a moment ago (this one still caches it usable): revoked at once, not unknown', async () => {
    const app = await createApp(server, { name: 'dead-key-elsewhere', profile: 'abitmedia' });
    const pair = await issue(server, app);
    expect((await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } })).status).toBe(200); // keys cached here
    const renewed = await issue(server, app, 'bob');
    const { rotor: other } = await openRotor({ config: server.config });
    try {
      const [{ kid }] = await other.apps.listKeys(app.id);
      await other.apps.rotateKey(await other.apps.get(app.id));
      await other.apps.revokeKey(app.id, kid);
    } finally {
      await other.close();
    }
    const dead = await refresh(renewed.refreshToken);
    expect(dead.body).toMatchObject({ code: 'invalid_refresh_token', detail: 'revoked' });
  });
});
