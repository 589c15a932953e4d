import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FixedClock } from '../../src/domain/clock.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

describe('admin API', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ fixedClock: true }); });
  afterAll(async () => { await server.close(); });
  const call = (method: string, path: string, json?: unknown) => server.call(method, path, { json, headers: admin });

  it('creates, lists, shows, updates and deletes apps', async () => {
    const created = await call('POST', '/admin/apps', { name: 'adm', policy: { accessTtl: 300, reuseGrace: 0 } });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(Object.keys(created.body).sort()).toEqual(['appKey', 'id', 'name', 'policy', 'profile']);
    expect(created.body.policy).toMatchObject({ accessTtl: 300, reuseGrace: 0, refreshTtl: 2592000, alg: 'ES256', binding: 'off' });
    expect((await call('POST', '/admin/apps', { name: 'adm' })).status).toBe(409);
    expect((await call('GET', '/admin/apps')).body.apps.map((a: any) => a.name)).toContain('adm');
    expect((await call('GET', `/admin/apps/${created.body.id}`)).body.name).toBe('adm');
    expect((await call('GET', '/admin/apps/adm')).body.id).toBe(created.body.id);
    const patched = await call('PATCH', '/admin/apps/adm', { policy: { sessionIdleTimeout: 600 }, description: 'the shop' });
    expect(patched.body).toMatchObject({ description: 'the shop', policy: { sessionIdleTimeout: 600, accessTtl: 300 } });
    expect((await call('DELETE', '/admin/apps/adm')).status).toBe(204);
    expect((await call('GET', '/admin/apps/adm')).status).toBe(404);
  });

  it('refuses bad app input with a clear 400', async () => {
    const cases: [unknown, RegExp][] = [
      [{ name: 'Has Spaces' }, /name must match/],
      [{ name: '01ARZ3NDEKTSV4RRFFQ69G5FAV' }, /must not be a ULID/],
      [{ name: 'x', profile: 'keycloak' }, /profile must be one of/],
      [{ name: 'x', policy: { accessTtl: -1 } }, /policy.accessTtl/],
      [{ name: 'x', policy: { accessTtl: 1e400 } }, /policy.accessTtl/],
      [{ name: 'x', policy: { alg: 'none' } }, /policy.alg must be one of/],
      [{ name: 'x', policy: { reuseGrace: 3600 } }, /policy.reuseGrace/],
      [{ name: 'x', policy: { bogus: 1 } }, /no field "bogus"/],
      [{ name: 'x', policy: 'nope' }, /policy must be a JSON object/],
    ];
    for (const [body, detail] of cases) {
      const res = await call('POST', '/admin/apps', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.detail).toMatch(detail);
    }
  });

  it('app keys: a new key works, a revoked one does not', async () => {
    const app = await createApp(server, { name: 'keys' });
    const extra = await call('POST', '/admin/apps/keys/app-keys');
    expect(extra.status).toBe(201);
    await issue(server, { name: 'keys', appKey: extra.body.appKey });
    expect((await call('DELETE', `/admin/apps/keys/app-keys/${extra.body.id}`)).status).toBe(204);
    const refused = await server.call('POST', '/v1/apps/keys/sessions', { json: { subject: 'a' }, headers: { authorization: `Bearer ${extra.body.appKey}` } });
    expect(refused.status).toBe(401);
    await issue(server, app);
  });

  it('subjects: put, get (never the password hash), delete revokes sessions', async () => {
    const app = await createApp(server, { name: 'subj' });
    const put = await call('PUT', '/admin/apps/subj/subjects/alice', { claims: { role: 'admin' }, password: 's3cret', ed25519PublicKey: '7FBEDB314A9B0C00CAEF967AC5CABB982EC45DA828A0C58A9AAFC854F32422AC' });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ subject: 'alice', claims: { role: 'admin' }, status: 'active', hasPassword: true, ed25519PublicKey: '7fbedb314a9b0c00caef967ac5cabb982ec45da828a0c58a9aafc854f32422ac' });
    expect(put.text).not.toMatch(/argon2|s3cret/);
    const got = await call('GET', '/admin/apps/subj/subjects/alice');
    expect(got.body.hasPassword).toBe(true);
    expect((await call('PUT', '/admin/apps/subj/subjects/alice', { claims: { sub: 'x' } })).status).toBe(400);
    expect((await call('PUT', '/admin/apps/subj/subjects/alice', { ed25519PublicKey: 'zz' })).status).toBe(400);
    expect((await call('PUT', '/admin/apps/subj/subjects/alice', { status: 'gone' })).status).toBe(400);
    const pair = await issue(server, app, 'alice');
    expect(decodeJwtPart(pair.accessToken, 1).role).toBe('admin');
    expect((await call('DELETE', '/admin/apps/subj/subjects/alice')).status).toBe(204);
    expect((await call('GET', '/admin/apps/subj/subjects/alice')).status).toBe(404);
    const res = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(res.status).toBe(400);
  });

  it('a retiring key stays published until the last token it signed expired, then drops out', async () => {
    const clock = server.clock as FixedClock;
    const app = await createApp(server, { name: 'retire', policy: { accessTtl: 600 } });
    const pair = await issue(server, app);
    const oldKid = decodeJwtPart(pair.accessToken, 0).kid;
    const rotated = (await call('POST', '/admin/apps/retire/keys/rotate')).body;
    const kids = async () => (await server.call('GET', '/v1/apps/retire/jwks.json')).body.keys.map((k: any) => k.kid).sort();
    expect(await kids()).toEqual([oldKid, rotated.kid].sort());
    const listed = async () => (await call('GET', '/admin/apps/retire/keys')).body.keys.find((k: any) => k.kid === oldKid);
    expect(rotated).toMatchObject({ state: 'active', published: true });
    expect(await listed()).toMatchObject({ state: 'retiring', published: true });
    clock.advance(599);
    expect(await kids()).toContain(oldKid);
    clock.advance(61 + 2);
    expect(await kids()).toEqual([rotated.kid]);
    // Still `retiring` (SPEC §1 has no other state), and the listing says it verifies nothing any more.
    expect(await listed()).toMatchObject({ state: 'retiring', published: false });
  });

  it('changing the algorithm rotates to a key of the new algorithm', async () => {
    const app = await createApp(server, { name: 'alg-change' });
    const before = decodeJwtPart((await issue(server, app)).accessToken, 0);
    await call('PATCH', '/admin/apps/alg-change', { policy: { alg: 'EdDSA' } });
    const after = decodeJwtPart((await issue(server, app)).accessToken, 0);
    expect(before.alg).toBe('ES256');
    expect(after.alg).toBe('EdDSA');
    expect(after.kid).not.toBe(before.kid);
  });
});
