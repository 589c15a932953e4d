import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics, observerFor } from '../src/http/observability.js';
import { WebhookSink } from '../src/http/webhook.js';
import { SecurityEventLog } from '../src/domain/event_log.js';
import { SqliteStore } from '../src/store/sqlite/sqlite_store.js';

/** A logger whose warn lines the test can read back. */
function capturingLogger(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: 'warn' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } }) };
}

/** A real receiver that answers 503 until `up`, and then takes `delayMs` per request (a slow operator endpoint). */
async function flakyReceiver(delayMs: number): Promise<{ server: Server; url: string; events: string[]; up: () => void }> {
  let isUp = false;
  const events: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += String(c); });
    req.on('end', () => {
      if (!isUp) { res.statusCode = 503; res.end(); return; }
      setTimeout(() => { events.push(String((JSON.parse(body) as { event: unknown }).event)); res.end('ok'); }, delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, events, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, up: () => { isUp = true; } };
}

async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

describe('security events webhook', () => {
  let receiver: Server;
  let url = '';
  const received: { body: string; signature: string | undefined }[] = [];
  let failFirst = 2;
  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += String(c); });
      req.on('end', () => {
        if (failFirst > 0) { failFirst -= 1; res.statusCode = 500; res.end(); return; }
        received.push({ body, signature: req.headers['x-rotor-signature'] as string | undefined });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  });
  afterAll(() => { receiver.close(); });

  it('delivers each event once, signed, retrying a failing receiver', async () => {
    const sink = new WebhookSink({ url, secret: 'hook-secret', baseDelayMs: 5 }, pino({ level: 'silent' }));
    const observer = observerFor(new Metrics({ defaultMetrics: false }), pino({ level: 'silent' }), sink);
    observer.event('reuse_detected', { appId: 'A', sessionId: 'S' });
    observer.event('key_revoked', { appId: 'A', kid: 'K' });
    await sink.idle();
    expect(failFirst).toBe(0); // the two 500s were really served, so the retry path ran
    expect(received.map((r) => JSON.parse(r.body).event)).toEqual(['reuse_detected', 'key_revoked']);
    const first = received[0]!;
    expect(first.signature).toBe(`sha256=${createHmac('sha256', 'hook-secret').update(first.body).digest('hex')}`);
    expect(JSON.parse(first.body)).toMatchObject({ appId: 'A', sessionId: 'S' });
  });

  it('stamps `at` by the Rotor\'s clock (the store\'s, in a server), as the event log records it, not by the host\'s', async () => {
    const store = new SqliteStore(':memory:');
    await store.migrate();
    try {
      const at = Date.UTC(2031, 4, 6, 7, 8, 9);
      const events = new SecurityEventLog(store, { now: () => at });
      const sink = new WebhookSink({ url, secret: 'hook-secret', baseDelayMs: 5 }, pino({ level: 'silent' }));
      const before = received.length;
      events.observing(observerFor(new Metrics({ defaultMetrics: false }), pino({ level: 'silent' }), sink)).event('key_revoked', { appId: 'A', kid: 'K' });
      await sink.idle();
      await events.flushed();
      const delivered = received.slice(before).map((r) => JSON.parse(r.body) as { event: string; at: string });
      expect(delivered).toEqual([expect.objectContaining({ event: 'key_revoked', at: '2031-05-06T07:08:09.000Z' })]);
      const [recorded] = (await store.listEvents({ afterId: null, sinceAt: null, limit: 10 })).filter((e) => e.event === 'key_revoked');
      expect(recorded?.at).toBe(at);
    } finally {
      await store.close();
    }
  });

  it('gives up after its attempts without throwing', async () => {
    // A receiver that always fails, counting what reaches it: the sink must really try, `attempts` times, then stop.
    let hits = 0;
    const failing = createServer((_req, res) => { hits += 1; res.statusCode = 500; res.end(); });
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', () => r()));
    try {
      const { log, lines } = capturingLogger();
      const failingUrl = `http://127.0.0.1:${(failing.address() as { port: number }).port}/hook`;
      const sink = new WebhookSink({ url: failingUrl, secret: null, attempts: 2, baseDelayMs: 1, timeoutMs: 200 }, log);
      sink.send({ event: 'login_failed' });
      await expect(sink.idle()).resolves.toBeUndefined();
      expect(hits).toBe(2);
      expect(lines.filter((l) => l.event === 'webhook_failed')).toEqual([expect.objectContaining({ securityEvent: 'login_failed' })]);
    } finally {
      failing.close();
    }
  });

  it('F4-01 a redirect is never followed: the target receives nothing, and the failure is retried and logged as "redirect 307"', async () => {
    // Where a hostile receiver points Rotor: an internal address, here a second real server counting what reaches it.
    const internal: string[] = [];
    const target = createServer((req, res) => { internal.push(`${req.method} ${req.url}`); res.end('internal'); });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
    let hits = 0;
    const redirecting = createServer((_req, res) => {
      hits += 1;
      res.writeHead(307, { location: `http://127.0.0.1:${(target.address() as { port: number }).port}/internal-admin` }).end();
    });
    await new Promise<void>((r) => redirecting.listen(0, '127.0.0.1', () => r()));
    try {
      const { log, lines } = capturingLogger();
      const hookUrl = `http://127.0.0.1:${(redirecting.address() as { port: number }).port}/hook/path-secret-123`;
      const sink = new WebhookSink({ url: hookUrl, secret: 'hook-secret', attempts: 3, baseDelayMs: 1 }, log);
      sink.send({ event: 'reuse_detected', appId: 'A', sessionId: 'S' });
      await sink.idle();
      expect(hits).toBe(3); // retried like any failure
      expect(internal).toEqual([]);
      expect(lines.filter((l) => l.event === 'webhook_failed')).toEqual([expect.objectContaining({ securityEvent: 'reuse_detected', reason: 'redirect 307' })]);
      expect(JSON.stringify(lines)).not.toMatch(/path-secret|internal-admin|127\.0\.0\.1/);
    } finally {
      redirecting.close();
      target.close();
    }
  });

  it('F4-01 a failed delivery is logged with the class of its failure only: status, timeout or network', async () => {
    const down = createServer((_req, res) => { res.statusCode = 503; res.end('maintenance page with-body-secret'); });
    await new Promise<void>((r) => down.listen(0, '127.0.0.1', () => r()));
    const hanging = createServer(() => { /* never answers */ });
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', () => r()));
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    try {
      const reasonFor = async (hookUrl: string): Promise<unknown> => {
        const { log, lines } = capturingLogger();
        const sink = new WebhookSink({ url: hookUrl, secret: null, attempts: 1, timeoutMs: 100 }, log);
        sink.send({ event: 'key_rotated', kid: 'K' });
        await sink.idle();
        expect(JSON.stringify(lines)).not.toMatch(/with-body-secret|127\.0\.0\.1/);
        return lines.find((l) => l.event === 'webhook_failed')?.reason;
      };
      expect(await reasonFor(`http://127.0.0.1:${(down.address() as { port: number }).port}/hook`)).toBe('status 503');
      expect(await reasonFor(`http://127.0.0.1:${(hanging.address() as { port: number }).port}/hook`)).toBe('timeout');
      expect(await reasonFor(`http://127.0.0.1:${closedPort}/hook`)).toBe('network');
    } finally {
      down.close();
      hanging.closeAllConnections();
      hanging.close();
    }
  });

  it('F4-02 every event carries an id of its own, the same on every retry of it', async () => {
    const bodies: string[] = [];
    let failNext = true;
    const flaky = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += String(c); });
      req.on('end', () => {
        bodies.push(body);
        // Fails the first attempt of every event: each is delivered twice.
        res.statusCode = failNext ? 500 : 200;
        failNext = !failNext;
        res.end();
      });
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', () => r()));
    try {
      const sink = new WebhookSink({ url: `http://127.0.0.1:${(flaky.address() as { port: number }).port}/hook`, secret: 'hook-secret', baseDelayMs: 1 }, pino({ level: 'silent' }));
      const observer = observerFor(new Metrics({ defaultMetrics: false }), pino({ level: 'silent' }), sink);
      observer.event('reuse_detected', { appId: 'A', sessionId: 'S' });
      observer.event('reuse_detected', { appId: 'A', sessionId: 'S' });
      await sink.idle();
      const sent = bodies.map((b) => JSON.parse(b) as { id: unknown; at: unknown; event: unknown });
      expect(sent).toHaveLength(4);
      expect(bodies[1]).toBe(bodies[0]); // the retry is the same signed body: same id, same at
      expect(bodies[3]).toBe(bodies[2]);
      expect(sent[0]!.id).toEqual(expect.stringMatching(/^[0-9A-Z]{26}$/));
      expect(sent[2]!.id).not.toBe(sent[0]!.id); // the same kind of event twice is two events
      expect(typeof sent[0]!.at).toBe('string');
    } finally {
      flaky.close();
    }
  });

  it('S2-16 a flood of login_failed to a down, then slow, receiver neither drops nor delays reuse_detected', async () => {
    const hook = await flakyReceiver(2);
    try {
      const { log, lines } = capturingLogger();
      const sink = new WebhookSink({ url: hook.url, secret: 'hook-secret', attempts: 12, baseDelayMs: 5, maxQueue: 50, maxBulkQueue: 100 }, log);
      for (let i = 0; i < 20_000; i += 1) sink.send({ event: 'login_failed', appId: 'A', username: `victim-${i}`, password: 'pw-secret' });
      sink.send({ event: 'reuse_detected', appId: 'A', sessionId: 'S' });
      await new Promise((r) => setTimeout(r, 50)); // the receiver is down meanwhile: everything is being retried
      hook.up();
      await until(() => hook.events.includes('reuse_detected'), 3000);
      expect(hook.events).toContain('reuse_detected');
      // At most the one bulk event already in flight when the receiver came back may land first.
      expect(hook.events.indexOf('reuse_detected')).toBeLessThanOrEqual(1);
      await sink.idle();
      // Memory stayed bounded: of 20,000 bulk events only the capped queue (plus the one in flight) was kept.
      const bulk = hook.events.filter((e) => e === 'login_failed').length;
      expect(bulk).toBeGreaterThan(0);
      expect(bulk).toBeLessThanOrEqual(101);
      // Drops are logged by event name and count only — one line for the first, one summary — never a payload field.
      const drops = lines.filter((l) => l.event === 'webhook_dropped');
      expect(drops).toEqual([
        expect.objectContaining({ priority: 'bulk', securityEvent: 'login_failed' }),
        expect.objectContaining({ priority: 'bulk', dropped: { login_failed: 20_000 - bulk } }),
      ]);
      expect(JSON.stringify(lines)).not.toMatch(/pw-secret|victim-/);
    } finally {
      hook.server.close();
    }
  }, 15_000);

  it('S2-16 caps each class separately: a full bulk queue leaves room for critical events, which drop only when their own queue is full', async () => {
    const { log, lines } = capturingLogger();
    const sink = new WebhookSink({ url: 'http://127.0.0.1:9/unreachable', secret: null, attempts: 1, timeoutMs: 200, maxQueue: 3, maxBulkQueue: 5 }, log);
    for (let i = 0; i < 1000; i += 1) sink.send({ event: i % 2 ? 'login_failed' : 'some_future_event' });
    sink.send({ event: 'key_rotated', kid: 'K' });
    sink.send({ event: 'subject_deleted', subjectId: 'U' });
    expect(sink.pending()).toEqual({ critical: 1, bulk: 5 }); // the first of each class is in flight, not queued
    for (let i = 0; i < 10; i += 1) sink.send({ event: 'reuse_detected', sessionId: `S${i}` });
    expect(sink.pending()).toEqual({ critical: 3, bulk: 5 });
    expect(lines.filter((l) => l.event === 'webhook_dropped')).toEqual([
      expect.objectContaining({ priority: 'bulk' }),
      expect.objectContaining({ priority: 'critical', securityEvent: 'reuse_detected' }),
    ]);
    await sink.idle();
    expect(sink.pending()).toEqual({ critical: 0, bulk: 0 });
  });
});
