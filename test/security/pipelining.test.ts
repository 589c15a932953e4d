import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestLimits, requestsInFlight } from '../../src/http/request_limits.js';
import { createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

/** Sends `count` requests on one connection at once; resolves with the answers read once all came or it closed. */
function pipelined(url: string, count: number, request: string, payload = request.repeat(count)): Promise<{ statuses: string[]; closed: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    const statuses = () => [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]!);
    socket.on('data', (chunk) => {
      received += String(chunk);
      if (statuses().length === count) {
        resolve({ statuses: statuses(), closed: false });
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve({ statuses: statuses(), closed: true }));
    socket.write(payload);
  });
}

/**
 * HTTP/1.1 pipelining: Node parses every request a connection sends, answered or not, so one connection
 * could queue without bound. More than 64 unanswered on one connection closes it; fewer are all answered.
 */
describe('pipelined requests', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { ROTOR_LOG_LEVEL: 'warn' } }); });
  afterAll(async () => { await server.close(); });

  const health = 'GET /healthz HTTP/1.1\r\nHost: rotor.test\r\n\r\n';

  it('a few pipelined requests are each answered, in order, on the connection', async () => {
    const few = await pipelined(server.url, 10, health);
    expect(few).toEqual({ statuses: Array(10).fill('200'), closed: false });
  });

  it('a connection with more than 64 requests unanswered is closed, its rest dropped; everyone else is served', async () => {
    const app = await createApp(server, { name: 'pipelining' });
    const pair = await issue(server, app);
    const flood = await pipelined(server.url, 5000, health);
    expect(flood.closed).toBe(true);
    expect(flood.statuses.length).toBeLessThanOrEqual(2 * requestLimits.perConnection);
    // Its requests' places are all given back, the dropped ones' too.
    for (let i = 0; i < 50 && requestsInFlight() !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(requestsInFlight()).toBe(0);
    const res = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.refreshToken } });
    expect(res.status).toBe(200);
    expect((await server.call('GET', '/metrics')).text).toMatch(/rotor_connections_closed_total\{reason="pipelining"\} 1\n/);
  });

  it('past the server-wide limit of requests in hand, more are answered server_busy at once; every request is let go, answered or abandoned', async () => {
    const total = requestLimits.total;
    requestLimits.total = 3; // as if a flood of connections held the rest
    try {
      const answered = await pipelined(server.url, 10, health);
      expect(answered).toEqual({ statuses: [...Array(3).fill('200'), ...Array(7).fill('503')], closed: false });
    } finally {
      requestLimits.total = total;
    }
    // Requests whose clients leave before they are answered (a body that never comes) are let go too.
    const { hostname, port } = new URL(server.url);
    await Promise.all(Array.from({ length: 20 }, () => new Promise<void>((resolve) => {
      const socket = connect(Number(port), hostname, () => {
        socket.write('POST /v1/refresh HTTP/1.1\r\nHost: rotor.test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"refre');
        setTimeout(() => { socket.destroy(); resolve(); }, 50);
      });
      socket.on('error', () => {});
    })));
    await new Promise((r) => setTimeout(r, 100));
    expect(requestsInFlight()).toBe(0);
    expect((await server.call('GET', '/healthz')).status).toBe(200);
  });

  it('refreshes pipelined past the limit: those before it answered, in order, then 503 and the close; the refused token is still live', async () => {
    const app = await createApp(server, { name: 'pipelining-refresh', policy: { reuseGrace: 0 } });
    const pairs = await Promise.all(Array.from({ length: requestLimits.perConnection + 1 }, () => issue(server, app)));
    const requests = pairs.map((p) => {
      const body = JSON.stringify({ refreshToken: p.refreshToken });
      return `POST /v1/refresh HTTP/1.1\r\nHost: rotor.test\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    });
    const answered = await pipelined(server.url, requests.length, '', requests.join(''));
    // Nothing written without its answer reaching the client: 64 rotations answered, the 65th refused.
    expect(answered.statuses).toEqual([...Array(requestLimits.perConnection).fill('200'), '503']);
    const last = await server.call('POST', '/v1/refresh', { json: { refreshToken: pairs.at(-1)!.refreshToken } });
    expect(last.status).toBe(200);
  });
});
