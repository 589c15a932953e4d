import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createApp, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Every admin write (POST, PATCH, PUT under /admin) takes a JSON object and only the fields it knows
 * (docs/api.md, Admin API): anything else is a 400 naming the field, and changes nothing. A typo that
 * answered 200 would leave the old value in force while the operator believes it changed.
 */
describe('admin writes refuse what they do not understand, and change nothing', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });
  const call = (method: string, path: string, json?: unknown) => server.call(method, path, { json, headers: admin });
  const raw = (method: string, path: string, body: string) =>
    server.call(method, path, { body, headers: { ...admin, 'content-type': 'application/json' } });
  const refused = (res: { status: number; body: any }, detail: RegExp) => {
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.code).toBe('invalid_request');
    expect(res.body.detail).toMatch(detail);
  };

  const NOT_OBJECTS = ['[]', 'null', '"x"', '1e400', '1', 'true', '[{"name":"arr"}]'];

  it('a body that is not a JSON object: 400 on every admin write, nothing created or changed', async () => {
    const app = await createApp(server, { name: 'shape' });
    const before = (await call('GET', '/admin/apps/shape')).body;
    const keysBefore = (await call('GET', '/admin/apps/shape/keys')).body.keys;
    const kid = keysBefore[0].kid;
    for (const body of NOT_OBJECTS) {
      refused(await raw('POST', '/admin/apps', body), /body must be a JSON object/);
      refused(await raw('PATCH', '/admin/apps/shape', body), /body must be a JSON object/);
      refused(await raw('PUT', '/admin/apps/shape/subjects/ghost', body), /body must be a JSON object/);
      refused(await raw('POST', '/admin/apps/shape/app-keys', body), /body must be a JSON object/);
      refused(await raw('POST', '/admin/apps/shape/keys/rotate', body), /body must be a JSON object/);
      refused(await raw('POST', `/admin/apps/shape/keys/${kid}/revoke`, body), /body must be a JSON object/);
    }
    // A write that takes fields needs its object: a PATCH or PUT with no body at all is no change anyone meant.
    refused(await server.call('PATCH', '/admin/apps/shape', { headers: admin }), /body must be a JSON object/);
    refused(await server.call('PUT', '/admin/apps/shape/subjects/ghost', { headers: admin }), /body must be a JSON object/);
    expect((await call('GET', '/admin/apps/shape')).body).toEqual(before);
    expect((await call('GET', '/admin/apps/shape/keys')).body.keys).toEqual(keysBefore);
    expect((await call('GET', '/admin/apps/shape/subjects/ghost')).status).toBe(404);
    expect((await call('GET', '/admin/apps')).body.apps.map((a: any) => a.name)).toEqual([app.name]);
  });

  it('an unknown top-level field: 400 naming it (cut short, never its value), nothing created or changed', async () => {
    await createApp(server, { name: 'typo', policy: { reuseGrace: 10 } });
    const before = (await call('GET', '/admin/apps/typo')).body;

    refused(await call('PATCH', '/admin/apps/typo', { polcy: { reuseGrace: 0 } }), /no field "polcy"/);
    refused(await call('PATCH', '/admin/apps/typo', { description: 'fine', polcy: { reuseGrace: 0 } }), /no field "polcy"/);
    refused(await call('POST', '/admin/apps', { name: 'typo-new', polcy: { reuseGrace: 0 } }), /no field "polcy"/);
    const secret = 'correct horse battery staple';
    const put = await call('PUT', '/admin/apps/typo/subjects/ghost', { pasword: secret });
    refused(put, /no field "pasword"/);
    expect(put.text).not.toContain(secret);

    // A long name is cut: enough to recognise, too short to carry what was pasted into it.
    const long = `x${'k'.repeat(500)}`;
    const cut = await call('PATCH', '/admin/apps/typo', { [long]: 1 });
    refused(cut, /no field "xk+"/);
    expect(cut.text).not.toContain(long.slice(0, 60));
    expect(cut.text.length).toBeLessThan(400);

    // Writes that take no fields (app keys, signing keys) take none: `{}` or no body at all.
    const kid = (await call('GET', '/admin/apps/typo/keys')).body.keys[0].kid;
    refused(await call('POST', '/admin/apps/typo/app-keys', { name: 'ci' }), /no field "name"/);
    refused(await call('POST', '/admin/apps/typo/keys/rotate', { alg: 'EdDSA' }), /no field "alg"/);
    refused(await call('POST', `/admin/apps/typo/keys/${kid}/revoke`, { reason: 'leaked' }), /no field "reason"/);

    expect((await call('GET', '/admin/apps/typo')).body).toEqual(before);
    expect((await call('GET', '/admin/apps/typo/keys')).body.keys.map((k: any) => [k.kid, k.state])).toEqual([[kid, 'active']]);
    expect((await call('GET', '/admin/apps/typo-new')).status).toBe(404);
    expect((await call('GET', '/admin/apps/typo/subjects/ghost')).status).toBe(404);
  });

  it('a field that exists but cannot be set there: 400 saying so, nothing created or changed', async () => {
    const app = await createApp(server, { name: 'fixed' });
    const before = (await call('GET', '/admin/apps/fixed')).body;
    refused(await call('PATCH', '/admin/apps/fixed', { id: '01ARZ3NDEKTSV4RRFFQ69G5FAV' }), /"id" cannot be changed/);
    refused(await call('PATCH', '/admin/apps/fixed', { profile: 'jwtplus' }), /"profile" cannot be changed/);
    refused(await call('PATCH', '/admin/apps/fixed', { description: 'x', createdAt: before.createdAt }), /"createdAt" cannot be set: Rotor keeps it/);
    // What GET answers, sent back whole, is refused for the fields Rotor keeps: no silent half-update.
    refused(await call('PATCH', '/admin/apps/fixed', { ...before, description: 'round trip' }), /"id" cannot be changed/);
    refused(await call('POST', '/admin/apps', { name: 'chosen-id', id: app.id }), /"id" cannot be set/);
    refused(await call('POST', '/admin/apps', { name: 'chosen-key', appKey: 'ak_x_y' }), /"appKey" cannot be set/);
    refused(await call('PUT', '/admin/apps/fixed/subjects/ghost', { subject: 'other' }), /"subject" cannot be changed/);
    refused(await call('PUT', '/admin/apps/fixed/subjects/ghost', { hasPassword: true }), /"hasPassword" cannot be set/);
    expect((await call('GET', '/admin/apps/fixed')).body).toEqual(before);
    expect((await call('GET', '/admin/apps/chosen-id')).status).toBe(404);
    expect((await call('GET', '/admin/apps/chosen-key')).status).toBe(404);
    expect((await call('GET', '/admin/apps/fixed/subjects/ghost')).status).toBe(404);
  });

  it('the writes as documented still work: known fields, and no body or {} where none is taken', async () => {
    await createApp(server, { name: 'works' });
    expect((await call('PATCH', '/admin/apps/works', { name: 'works', public: true, description: 'd', policy: { reuseGrace: 0 } })).status).toBe(200);
    expect((await call('PUT', '/admin/apps/works/subjects/ann', {})).status).toBe(200);
    expect((await call('PUT', '/admin/apps/works/subjects/ann', { claims: { role: 'x' }, status: 'active', password: 'pw', ed25519PublicKey: null })).status).toBe(200);
    expect((await server.call('POST', '/admin/apps/works/app-keys', { headers: admin })).status).toBe(201);
    expect((await call('POST', '/admin/apps/works/app-keys', {})).status).toBe(201);
    const first = (await call('GET', '/admin/apps/works/keys')).body.keys[0].kid;
    expect((await server.call('POST', '/admin/apps/works/keys/rotate', { headers: admin })).status).toBe(200);
    expect((await call('POST', '/admin/apps/works/keys/rotate', {})).status).toBe(200);
    expect((await call('POST', `/admin/apps/works/keys/${first}/revoke`, {})).status).toBe(200);
    // A client that sends Content-Type: application/json on every call, with no body (found by an outside test).
    expect((await raw('POST', '/admin/apps/works/app-keys', '')).status).toBe(201);
    expect((await raw('POST', '/admin/apps/works/keys/rotate', '')).status).toBe(200);
    refused(await raw('PATCH', '/admin/apps/works', ''), /must be a JSON object/);
  });
});
