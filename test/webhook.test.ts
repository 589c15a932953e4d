import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics, observerFor } from '../src/http/observability.js';
import { WebhookSink } from '../src/http/webhook.js';

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
    expect(received.map((r) => JSON.parse(r.body).event)).toEqual(['reuse_detected', 'key_revoked']);
    const first = received[0]!;
    expect(first.signature).toBe(`sha256=${createHmac('sha256', 'hook-secret').update(first.body).digest('hex')}`);
    expect(JSON.parse(first.body)).toMatchObject({ appId: 'A', sessionId: 'S' });
  });

  it('gives up after its attempts without throwing', async () => {
    const sink = new WebhookSink({ url: 'http://127.0.0.1:9/unreachable', secret: null, attempts: 2, baseDelayMs: 1, timeoutMs: 200 }, pino({ level: 'silent' }));
    sink.send({ event: 'login_failed' });
    await sink.idle();
  });
});
