import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, issue, startTestServer, type TestServer } from './helpers/server.js';
import { createTestSchema } from './store/pg_harness.js';

/**
 * SPEC §2.9 / N7, measured from outside as the issue did: one session refreshed 2,000 times occupies the
 * rows, and within a few KiB the bytes, it occupied after its first refresh — on both stores — and an
 * ancestor 2,000 generations old, presented now, is still reuse.
 */
for (const store of ['sqlite', 'postgres'] as const) {
  describe(`state per session, not per rotation (${store})`, () => {
    let server: TestServer;
    let schema: Awaited<ReturnType<typeof createTestSchema>> | null = null;
    let measure: (sessionId: string) => Promise<{ sessions: number; tokenRows: number; bytes: number }>;
    let closeDb = async () => {};
    beforeAll(async () => {
      if (store === 'postgres') {
        schema = await createTestSchema();
        server = await startTestServer({ env: { ROTOR_DATABASE_URL: schema.url, ROTOR_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') } });
        const client = new pg.Client({ connectionString: schema.url });
        await client.connect();
        closeDb = () => client.end();
        measure = async (sessionId) => {
          const one = async (sql: string, values: unknown[] = []) => Number((await client.query(sql, values)).rows[0].n);
          return {
            sessions: await one('SELECT count(*) AS n FROM sessions'),
            tokenRows: await one('SELECT count(*) AS n FROM refresh_tokens'),
            bytes: await one('SELECT pg_column_size(s.*) AS n FROM sessions s WHERE id = $1', [sessionId]),
          };
        };
      } else {
        server = await startTestServer();
        const db = new Database(join(server.dir, 'rotor.db'), { readonly: true });
        closeDb = async () => db.close();
        measure = async (sessionId) => ({
          sessions: (db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n,
          tokenRows: (db.prepare('SELECT count(*) AS n FROM refresh_tokens').get() as { n: number }).n,
          bytes: Buffer.byteLength(JSON.stringify(db.prepare('SELECT * FROM sessions WHERE id = ?').get(sessionId))),
        });
      }
    });
    afterAll(async () => {
      await closeDb();
      await server.close();
      await schema?.drop();
    });

    it('2,000 refreshes: the same rows, the same bytes within a few KiB; the first token is still reuse', async () => {
      const app = await createApp(server, { name: 'growth', policy: { reuseGrace: 0 } });
      const pair = await issue(server, app);
      const refresh = (refreshToken: string) => server.call('POST', '/v1/refresh', { json: { refreshToken } });
      let token = (await refresh(pair.refreshToken)).body.refreshToken as string;
      const afterFirst = await measure(pair.sessionId);
      for (let i = 0; i < 1999; i += 1) {
        const res = await refresh(token);
        expect(res.status).toBe(200);
        token = res.body.refreshToken;
      }
      const after = await measure(pair.sessionId);
      expect(after.sessions).toBe(afterFirst.sessions);
      expect(after.tokenRows).toBe(0);
      expect(Math.abs(after.bytes - afterFirst.bytes)).toBeLessThan(4096);
      // 2,000 generations back, never stored: recognised as this session's, and the session dies.
      const ancient = await refresh(pair.refreshToken);
      expect(ancient.body.detail).toBe('reused');
      expect((await refresh(token)).body.detail).toBe('revoked');
    }, 120_000);
  });
}
