import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../../src/http/server.js';
import { createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

interface Slow { socket: Socket; closedAfterMs: Promise<number>; received: () => string }

/** A socket that sends `head` and then one more byte of `drip` every `everyMs`, for as long as it stays open. */
function dribble(url: string, head: string, drip: string, everyMs: number): Slow {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  const started = Date.now();
  let received = '';
  socket.on('data', (chunk) => { received += String(chunk); });
  socket.on('error', () => {});
  socket.write(head);
  let i = 0;
  const timer = setInterval(() => { if (!socket.destroyed) socket.write(drip[i++ % drip.length]!); }, everyMs);
  const closedAfterMs = new Promise<number>((resolve) => socket.on('close', () => { clearInterval(timer); resolve(Date.now() - started); }));
  return { socket, closedAfterMs, received: () => received };
}

/**
 * SECURITY-CASES H-03: slowloris (headers one byte at a time) and slow bodies. Each socket is answered
 * 408 and closed once its headers are late (HEADERS_TIMEOUT_MS) or its whole request is
 * (REQUEST_TIMEOUT_MS), while refreshes from honest clients go on answering at once.
 */
describe('H-03 slow clients', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { ROTOR_LOG_LEVEL: 'warn' } }); });
  afterAll(async () => { await server.close(); });

  it('slow headers and slow bodies are cut off on time; honest refreshes are unaffected meanwhile', async () => {
    const app = await createApp(server, { name: 'slowloris' });
    const slowHeaders = Array.from({ length: 200 }, () =>
      dribble(server.url, 'POST /v1/refresh HTTP/1.1\r\nHost: rotor.test\r\n', 'X-Slow: 1\r\n', 1000));
    const slowBodies = Array.from({ length: 50 }, () =>
      dribble(server.url, 'POST /v1/refresh HTTP/1.1\r\nHost: rotor.test\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n', '{"refreshToken":"', 1000));

    // An honest client keeps refreshing its session throughout the attack.
    let token = (await issue(server, app)).refreshToken as string;
    const latencies: number[] = [];
    const until = Date.now() + REQUEST_TIMEOUT_MS + 3000;
    while (Date.now() < until) {
      const started = Date.now();
      const res = await server.call('POST', '/v1/refresh', { json: { refreshToken: token } });
      latencies.push(Date.now() - started);
      expect(res.status).toBe(200);
      token = res.body.refreshToken;
      await new Promise((r) => setTimeout(r, 100));
    }

    const headerClosings = await Promise.all(slowHeaders.map((s) => s.closedAfterMs));
    const bodyClosings = await Promise.all(slowBodies.map((s) => s.closedAfterMs));
    // Node checks the deadlines every second: closed within [deadline, deadline + 2 s].
    expect(Math.min(...headerClosings)).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    expect(Math.max(...headerClosings)).toBeLessThanOrEqual(HEADERS_TIMEOUT_MS + 2000);
    expect(Math.min(...bodyClosings)).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(Math.max(...bodyClosings)).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS + 2000);
    for (const slow of [...slowHeaders, ...slowBodies]) expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);

    latencies.sort((a, b) => a - b);
    expect(latencies.length).toBeGreaterThan(50);
    expect(latencies[Math.floor(latencies.length * 0.99)]).toBeLessThan(500);
  }, 60_000);
});
