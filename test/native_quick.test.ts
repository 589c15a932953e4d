import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, issue, startTestServer, type TestServer } from './helpers/server.js';

describe('smoke', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  it('issues and refreshes', async () => {
    const app = await createApp(server, { name: 'shop' });
    const pair = await issue(server, app);
    const res = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(res.status).toBe(200);
    expect(res.body.refreshToken).not.toBe(pair.refreshToken);
  });
});
