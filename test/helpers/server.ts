import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { FixedClock, systemClock, type Clock } from '../../src/domain/clock.js';
import type { Rotor } from '../../src/domain/rotor.js';
import { Metrics, observerFor } from '../../src/http/observability.js';
import { buildServer, createLogger } from '../../src/http/server.js';
import { dialectHttps } from '../../src/dialects/index.js';
import { openRotor } from '../../src/runtime.js';
import { createTestSchema } from '../store/pg_harness.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestServer {
  app: FastifyInstance;
  rotor: Rotor;
  config: Config;
  url: string;
  clock: Clock;
  dir: string;
  /** Every log line the server wrote, as text. */
  logs: string[];
  close(): Promise<void>;
  /** fetch against the server; JSON bodies are encoded for you. */
  call(method: string, path: string, options?: { json?: unknown; form?: Record<string, string>; headers?: Record<string, string>; body?: string }): Promise<TestResponse>;
}

export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

/**
 * A real server on an ephemeral port over a real SQLite file in a temporary directory
 * (or the database `env` names), with the clock the test chooses.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-test-'));
  try {
    return await startTestServerIn(dir, options);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true }); // a server refused at start (bad configuration under test) leaves nothing
    throw err;
  }
}

type TestServerOptions = { clock?: Clock; env?: Record<string, string>; fixedClock?: boolean; port?: number };

async function startTestServerIn(dir: string, options: TestServerOptions): Promise<TestServer> {
  // ROTOR_TEST_STORE=postgres: the same tests on PostgreSQL, in a schema of this server's own.
  const pgSchema = process.env.ROTOR_TEST_STORE === 'postgres' && !options.env?.ROTOR_DATABASE_URL ? await createTestSchema() : null;
  // ROTOR_TEST_STORE=redis: on the Redis Cluster the test file started (ROTOR_TEST_REDIS_SEEDS), under a key prefix of this server's own.
  const redisUrl = process.env.ROTOR_TEST_STORE === 'redis' && !options.env?.ROTOR_DATABASE_URL
    ? `redis+cluster://${process.env.ROTOR_TEST_REDIS_SEEDS}?prefix=t${randomBytes(6).toString('hex')}&waitMs=2000` : null;
  const config = loadConfig({
    ROTOR_DATABASE_URL: `sqlite:${join(dir, 'rotor.db')}`,
    ROTOR_PORT: '0',
    ROTOR_ADMIN_TOKEN: ADMIN_TOKEN,
    ROTOR_ISSUER: 'http://rotor.test',
    ROTOR_LOG_LEVEL: 'debug',
    // Tests that are not about rate limits must not trip them; test/security/rate_limit.test.ts sets its own.
    ROTOR_RATE_LIMITS: 'off',
    ...(pgSchema ? { ROTOR_DATABASE_URL: pgSchema.url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') } : {}),
    ...(redisUrl ? { ROTOR_DATABASE_URL: redisUrl, ROTOR_MASTER_KEY: randomBytes(32).toString('base64') } : {}),
    ...options.env,
  });
  // Rate limits count in fixed one-minute windows of the server's clock: on the system clock, a test whose
  // requests straddle a minute's end sees its budget reset halfway (a flake, not a finding). A server with
  // limits therefore stands still in time unless its test brings a clock of its own.
  const fixed = options.fixedClock ?? (options.env?.ROTOR_RATE_LIMITS !== undefined && options.env.ROTOR_RATE_LIMITS !== 'off');
  const clock = options.clock ?? (fixed ? new FixedClock(Date.now()) : systemClock);
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { logs.push(String(chunk)); done(); } });
  const logger = createLogger(config.logLevel, sink);
  const metrics = new Metrics({ defaultMetrics: false });
  const { rotor } = await openRotor({ config, clock, observer: observerFor(metrics, logger), logger });
  const app = buildServer({ rotor, config, metrics, logger, dialects: dialectHttps() });
  await app.listen({ host: '127.0.0.1', port: options.port ?? 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    app, rotor, config, url, clock, dir, logs,
    async close() {
      try {
        await app.close();
        await rotor.close();
      } finally {
        // Also when closing failed (a store cut off by the test): the test's files and schema never outlive it.
        rmSync(dir, { recursive: true, force: true });
        await pgSchema?.drop();
      }
    },
    async call(method, path, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      let body: string | undefined = opts.body;
      if (opts.json !== undefined) {
        headers['content-type'] ??= 'application/json';
        body = JSON.stringify(opts.json);
      } else if (opts.form) {
        headers['content-type'] ??= 'application/x-www-form-urlencoded';
        body = new URLSearchParams(opts.form).toString();
      }
      const res = await fetch(url + path, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = undefined;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
      return { status: res.status, headers: res.headers, text, body: parsed };
    },
  };
}

/** Creates an app through the admin API; returns its id, name and first app key. */
export async function createApp(server: TestServer, input: { name: string; profile?: string; public?: boolean; policy?: Record<string, unknown> }) {
  const res = await server.call('POST', '/admin/apps', { json: input, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.status !== 201) throw new Error(`createApp failed: ${res.status} ${res.text}`);
  return res.body as { id: string; name: string; profile: string; appKey: string; policy: Record<string, unknown> };
}

/** Issues a session through the native API. */
export async function issue(server: TestServer, app: { name: string; appKey: string }, subject = 'alice', extra: Record<string, unknown> = {}) {
  const res = await server.call('POST', `/v1/apps/${app.name}/sessions`, {
    json: { subject, ...extra }, headers: { authorization: `Bearer ${app.appKey}` },
  });
  if (res.status !== 201) throw new Error(`issue failed: ${res.status} ${res.text}`);
  return res.body as { accessToken: string; refreshToken: string; sessionId: string; expiresIn: number; refreshExpiresIn: number; tokenType: string };
}

export const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

export function decodeJwtPart(token: string, index: 0 | 1): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[index] as string, 'base64url').toString('utf8'));
}
