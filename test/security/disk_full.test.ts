import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * F-08 on SQLite: a full database (SQLITE_FULL, made real by capping the file at its current size with
 * `max_page_count`) answers writes with 503 and no token, keeps the JWKS and verification working, and
 * recovers without a restart once space is back.
 */
// PostgreSQL's F-08 (out of disk or read-only) is in test/store/postgres.test.ts and test/outage.test.ts.
describe.skipIf((process.env.ROTOR_TEST_STORE ?? 'sqlite') !== 'sqlite')('F-08 disk full (SQLite)', () => {
  let server: TestServer;
  let db: { pragma(sql: string, options?: { simple: boolean }): unknown };
  beforeAll(async () => {
    server = await startTestServer();
    // The server's own connection (the store's connection module), so the page limit binds its writes.
    db = (server.rotor.internals.store as unknown as { c: { db: typeof db } }).c.db;
  });
  afterAll(async () => { await server.close(); });

  it('writes answer 503 with no token; reads keep working; it recovers by itself', async () => {
    const app = await createApp(server, { name: 'full' });
    const pair = await issue(server, app);
    // Fill what is left of the last pages, then forbid the file to grow.
    const pages = Number(db.pragma('page_count', { simple: true }));
    db.pragma(`max_page_count = ${pages}`);
    // Small sessions until every last free byte is used (20 refusals in a row).
    let refusals = 0;
    for (let i = 0; i < 3000 && refusals < 20; i += 1) {
      const res = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: `f${i}` }, headers: { authorization: `Bearer ${app.appKey}` } });
      expect([201, 503]).toContain(res.status);
      refusals = res.status === 503 ? refusals + 1 : 0;
    }
    expect(refusals).toBe(20);

    // A rotation rewrites its session's row in place (SPEC §2.9: state does not grow with rotations), so it
    // may still fit; if it needs a page, it is 503 with no token. Never anything else.
    const during = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    const outcome = during.status === 200
      ? `200, successor ${/^rt_/.test(String(during.body.refreshToken)) ? 'issued' : 'missing'}`
      : `${during.status}, Retry-After ${during.headers.get('retry-after') === null ? 'missing' : 'set'}, ${during.text.includes('rt_') ? 'a token leaked' : 'no token'}`;
    expect(['200, successor issued', '503, Retry-After set, no token']).toContain(outcome);
    expect((await server.call('GET', `/v1/apps/${app.name}/jwks.json`)).status).toBe(200);
    const introspect = await server.call('POST', '/v1/introspect', { json: { token: pair.accessToken }, headers: { authorization: `Bearer ${app.appKey}` } });
    expect(introspect.body.active).toBe(true);

    // Space comes back: the latest token renews (nothing was half written), and issuing works again, no restart.
    db.pragma('max_page_count = 1073741823');
    const latest = during.status === 200 ? during.body.refreshToken : pair.refreshToken;
    const renewed = await server.call('POST', '/v1/refresh', { json: { refreshToken: latest } });
    expect(renewed.status).toBe(200);
    expect((await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'after' }, headers: { authorization: `Bearer ${app.appKey}` } })).status).toBe(201);
  });
});
