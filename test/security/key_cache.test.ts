import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FixedClock } from '../../src/domain/clock.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';
import { domainRotor } from '../helpers/rotor.js';

/**
 * S2-13: a key rotation or revocation reaches every instance once the command has returned. Two real
 * servers over one database (SQLite here; PostgreSQL through test/suites_on_postgres.test.ts): the one
 * that did not make the change must not sign with the rotated-out key nor accept the revoked one, not
 * even in the second its cache used to trust.
 */
describe('S2-13 signing-key changes reach every instance at once', () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await startTestServer();
    b = await startTestServer({ env: { ROTOR_DATABASE_URL: a.config.databaseUrl, ...(a.config.masterKeyBase64 ? { ROTOR_MASTER_KEY: a.config.masterKeyBase64 } : {}) } });
  });
  afterAll(async () => { await b.close(); await a.close(); });

  const introspect = (server: TestServer, app: { appKey: string }, token: string) =>
    server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${app.appKey}` } });

  it('S2-13 a key revoked on one instance is refused by the other at once, and the other signs with a new key', async () => {
    const app = await createApp(a, { name: 's213-revoke' });
    const pair = await issue(a, app);
    const kid = decodeJwtPart(pair.accessToken, 0).kid;
    expect((await introspect(a, app, pair.accessToken)).body.active).toBe(true); // a's cache holds the key now
    expect((await b.call('POST', `/admin/apps/${app.id}/keys/${kid}/revoke`, { headers: admin })).status).toBe(200);
    expect((await introspect(a, app, pair.accessToken)).body.active).toBe(false);
    const verifik = await a.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(verifik.status).toBe(200);
    expect(decodeJwtPart(verifik.body.accessToken, 0).kid).not.toBe(kid);
  });

  it('S2-13 after a rotation on one instance, the other\'s very next issuance and refresh sign with the new key', async () => {
    const app = await createApp(a, { name: 's213-rotate' });
    const first = await issue(a, app);
    const oldKid = decodeJwtPart(first.accessToken, 0).kid;
    const rotated = await b.call('POST', `/admin/apps/${app.id}/keys/rotate`, { headers: admin });
    expect(rotated.status).toBe(200);
    const newKid = rotated.body.kid;
    expect(newKid).not.toBe(oldKid);
    expect(decodeJwtPart((await issue(a, app, 'bob')).accessToken, 0).kid).toBe(newKid);
    const refreshed = await a.call('POST', '/v1/refresh', { json: { refreshToken: first.refreshToken } });
    expect(decodeJwtPart(refreshed.body.accessToken, 0).kid).toBe(newKid);
    // The retiring key still verifies what it signed (SPEC §1), on both instances.
    expect((await introspect(a, app, first.accessToken)).body.active).toBe(true);
  });

  it('S2-13 a warm instance accepts tokens of a key rotated in elsewhere at once, and their revocation takes', async () => {
    const app = await createApp(a, { name: 's213-newkey', profile: 'abitmedia' });
    const before = await issue(a, app);
    expect((await introspect(b, app, before.accessToken)).body.active).toBe(true); // b's cache holds the old key
    expect((await a.call('POST', `/admin/apps/${app.id}/keys/rotate`, { headers: admin })).status).toBe(200);
    const fresh = await issue(a, app, 'bob');
    expect((await introspect(b, app, fresh.accessToken)).body.active).toBe(true);
    expect((await b.call('POST', '/v1/revoke', { json: { token: fresh.refreshToken } })).status).toBe(200);
    expect((await a.call('POST', '/v1/refreshToken', { json: { refreshToken: fresh.refreshToken } })).status).toBe(400);
    const renewed = await b.call('POST', '/v1/refreshToken', { json: { refreshToken: before.refreshToken } });
    expect(renewed.status).toBe(200);
  });

  it('S2-13 a JWT refresh token signed by a key revoked elsewhere is refused by a warm instance', async () => {
    const app = await createApp(a, { name: 's213-flolive', profile: 'flolive' });
    const pair = await issue(a, app);
    const kid = decodeJwtPart(pair.refreshToken, 0).kid;
    expect((await introspect(a, app, pair.refreshToken)).body.active).toBe(true);
    expect((await b.call('POST', `/admin/apps/${app.id}/keys/${kid}/revoke`, { headers: admin })).status).toBe(200);
    const res = await a.call('PUT', '/api/v2/auth/token', { json: { token: pair.accessToken, refreshToken: pair.refreshToken } });
    expect(res.status).toBe(401);
  });
});

describe('S2-13 key generation is single-flight per app', () => {
  it('S2-13 thirty concurrent issuances after the rotation period generate one key, not thirty', async () => {
    const t = await domainRotor();
    const { app } = await t.rotor.apps.create({ name: 'single-flight', policy: { keyRotationPeriod: 3600, alg: 'RS256' } });
    await t.rotor.issueSession(app, { subject: 'warm' });
    let rotations = 0;
    const rotate = t.store.rotateSigningKey.bind(t.store);
    t.store.rotateSigningKey = (input) => { rotations += 1; return rotate(input); };
    (t.clock as FixedClock).advance(3601);
    await Promise.all(Array.from({ length: 30 }, (_, i) => t.rotor.issueSession(app, { subject: `user-${i}` })));
    expect(rotations).toBe(1);
    expect((await t.rotor.apps.listKeys(app.id)).filter((k) => k.state === 'active')).toHaveLength(1);
    await t.store.close();
  });
});
