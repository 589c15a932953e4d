import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * S2-12: updates that read a row, await something, then write the whole row back (a subject's password
 * change racing a disable; two PATCHes of one app) lost the other writer's change.
 * ROTOR_TEST_STORE=postgres runs these tests on PostgreSQL (test/suites_on_postgres.test.ts).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('S2-12 concurrent updates of one subject or app', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });
  const call = (method: string, path: string, json?: unknown) => server.call(method, path, { json, headers: admin });

  it('S2-12 a password change racing a disable (admin API, many rounds): the subject stays disabled, its sessions end, it gets no new one', async () => {
    const app = await createApp(server, { name: 's2-12-subjects' });
    const bearer = { authorization: `Bearer ${app.appKey}` };
    for (let round = 0; round < 12; round += 1) {
      const subject = `racer-${round}`;
      const path = `/admin/apps/${app.name}/subjects/${subject}`;
      const before = await issue(server, app, subject);
      // The password change starts first and spends tens of milliseconds in argon2; the disable lands
      // meanwhile (or, in the rounds without a pause, either may go first).
      const password = call('PUT', path, { password: `password-${round}` });
      await sleep(round % 3 === 0 ? 0 : 5);
      const disable = call('PUT', path, { status: 'disabled' });
      const [p, d] = await Promise.all([password, disable]);
      expect([p.status, d.status]).toEqual([200, 200]);
      expect(d.body.status).toBe('disabled');

      const shown = await call('GET', path);
      expect({ round, status: shown.body.status, hasPassword: shown.body.hasPassword }).toEqual({ round, status: 'disabled', hasPassword: true });
      const again = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject }, headers: bearer });
      expect({ round, status: again.status, code: again.body?.code }).toEqual({ round, status: 403, code: 'subject_disabled' });
      const renewed = await server.call('POST', '/v1/refresh', { json: { refreshToken: before.refreshToken }, headers: bearer });
      expect(renewed.status).not.toBe(200);
      const sessions = await server.rotor.store.listSessions((await server.rotor.apps.get(app.name)).id, subject);
      expect(sessions.filter((s) => s.revokedAt === null)).toEqual([]);
    }
  });

  it('S2-12 the CLI\'s disable (get, then put the status) racing a password set leaves the subject disabled', async () => {
    const { rotor } = server;
    const app = await rotor.apps.create({ name: 's2-12-cli' });
    for (let round = 0; round < 6; round += 1) {
      const subject = `cli-${round}`;
      await rotor.subjects.put(app.app, subject, { claims: { round } });
      // `rotor subjects disable` does exactly this: get (for subject_not_found), then put { status }.
      const disable = (async () => {
        await rotor.subjects.get(app.app, subject);
        return rotor.subjects.put(app.app, subject, { status: 'disabled' });
      })();
      const password = rotor.subjects.put(app.app, subject, { password: `pw-${round}` });
      await Promise.all([disable, password]);
      expect(await rotor.subjects.get(app.app, subject)).toMatchObject({ status: 'disabled', claims: { round }, passwordHash: expect.stringMatching(/^\$argon2id\$/) });
    }
  });

  it('S2-12 two concurrent updates of different fields of one app both survive (many rounds)', async () => {
    const { rotor } = server;
    const { app } = await rotor.apps.create({ name: 's2-12-apps' });
    for (let round = 0; round < 20; round += 1) {
      const updates = [
        rotor.apps.update(app.id, { policy: { accessTtl: 100 + round } }),
        rotor.apps.update(app.name, { policy: { reuseGrace: round } }),
        rotor.apps.update(app.id, { description: `round ${round}` }),
      ];
      await Promise.all(updates);
      const stored = await rotor.store.findApp({ id: app.id });
      expect({ round, accessTtl: stored?.policy.accessTtl, reuseGrace: stored?.policy.reuseGrace, description: stored?.description })
        .toEqual({ round, accessTtl: 100 + round, reuseGrace: round, description: `round ${round}` });
    }
  });

  it('S2-12 two concurrent PATCHes of different policy fields (admin API) both survive', async () => {
    await createApp(server, { name: 's2-12-patch' });
    for (let round = 0; round < 10; round += 1) {
      const [a, b] = await Promise.all([
        call('PATCH', '/admin/apps/s2-12-patch', { policy: { accessTtl: 200 + round } }),
        call('PATCH', '/admin/apps/s2-12-patch', { policy: { sessionIdleTimeout: 600 + round } }),
      ]);
      expect([a.status, b.status]).toEqual([200, 200]);
      const shown = (await call('GET', '/admin/apps/s2-12-patch')).body;
      expect({ round, accessTtl: shown.policy.accessTtl, idle: shown.policy.sessionIdleTimeout }).toEqual({ round, accessTtl: 200 + round, idle: 600 + round });
    }
  });

  it('S2-12 updates that are each valid but not together: the one that comes second is refused against the newer row', async () => {
    const { rotor } = server;
    // jwtplus: accessTtl must not exceed refreshTtl (10800 s by default).
    const { app } = await rotor.apps.create({ name: 's2-12-combined', profile: 'jwtplus' });
    const results = await Promise.allSettled([
      rotor.apps.update(app.id, { policy: { accessTtl: 7200 } }),
      rotor.apps.update(app.id, { policy: { refreshTtl: 3600 } }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const stored = await rotor.store.findApp({ id: app.id });
    expect(stored!.policy.accessTtl).toBeLessThanOrEqual(stored!.policy.refreshTtl as number);
  });
});
