// @ts-check
/**
 * The benchmark harness: for one row it starts the server as its own process, pre-creates sessions,
 * forks the load generator (bench/loadgen.mjs) for a warm-up phase and a measured phase (each on its
 * own fresh sessions), samples the server's RSS and CPU time during the measured phase, and stops
 * the server. `run.mjs` drives it over the rows of `rows.mjs`; the smoke test drives it directly.
 */
import Database from 'better-sqlite3';
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { dpopProof, newDpopKey, thumbprint } from './dpop.mjs';
import { protocol } from './protocols.mjs';

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
const ISSUER = 'http://rotor.bench';
const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const CLOCK_TICKS = 100; // USER_HZ on Linux
/** No single set-up or probe request waits longer than this: a server that stops answering fails its row instead of hanging the run. */
const ANSWER_MS = 60_000;

/**
 * @typedef {import('./protocols.mjs').TokenState} TokenState
 * @typedef {import('./protocols.mjs').Setup} Setup
 * @typedef {{
 *   id: string, label: string, target: 'rotor' | 'oidc' | 'floor', protocol: string,
 *   store?: 'sqlite' | 'postgres', profile?: string, policy?: Record<string, unknown>, env?: Record<string, string>,
 *   floorMode?: 'sign' | 'sqlite', fault?: 'none' | 'duplicate' | 'status' | 'same', fill?: number,
 *   fillGeneration?: number, disk?: boolean, baseline?: boolean, requires?: () => string | null,
 *   dpop?: boolean, comparesTo?: string,
 * }} Row
 * `dpop`: every session is issued bound to a P-256 key of its own (`dpopJkt`) and the protocol proves each
 * call with it; `comparesTo`: the row whose refresh/s this one is reported against (run.mjs).
 * @typedef {{ durationSeconds: number, warmupSeconds: number, connections: number, profileDir?: string,
 *   logDir?: string, timeoutSeconds?: number, disk?: 'yes' | 'no' | 'only', diskSessions?: number,
 *   diskRotations?: number }} RunOptions
 * @typedef {{ store: 'sqlite' | 'postgres', sessions: number, rotations: number, bytesPerSession: number,
 *   bytesPerSessionAfterFirst: number, refreshRowsPerSession: number, seconds: number,
 *   tables: Record<string, number> }} DiskResult
 * @typedef {{ id: string, label: string, skipped?: string, refreshPerSecond?: number, p50?: number, p99?: number,
 *   errors?: number, reasons?: Record<string, number>, rssMb?: number, cpuUsPerRefresh?: number, ok?: number,
 *   fillSeconds?: number, warmup?: unknown, generatorCores?: number, disk?: DiskResult, dpopProofs?: number, proofsSignedLive?: number,
 *   mainThreadCpuUsPerRefresh?: number, otherThreadsCpuUsPerRefresh?: number, otherThreadsUsPerRefresh?: number[], storeCpuUsPerRefresh?: number }} RowResult
 */

// ── processes ──────────────────────────────────────────────────────────────────────────────────────

/** @returns {Promise<number>} */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The pids of a process and all its descendants (cluster workers). @param {number} pid @returns {number[]} */
export function processTree(pid) {
  const all = [pid];
  for (let i = 0; i < all.length; i += 1) {
    const current = /** @type {number} */ (all[i]);
    try {
      for (const task of readdirSync(`/proc/${current}/task`)) {
        const children = readFileSync(`/proc/${current}/task/${task}/children`, 'utf8').trim();
        if (children) for (const child of children.split(/\s+/)) all.push(Number(child));
      }
    } catch {
      // the process is gone
    }
  }
  return all;
}

/** Resident set size of a process tree, MB. @param {number} pid */
export function rssMb(pid) {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (match) kb += Number(match[1]);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

/** Clock ticks (user + system) in a `/proc/…/stat` file: fields 14 and 15 (utime, stime). @param {string} path */
function statTicks(path) {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** CPU seconds (user + system) used so far by a list of processes; one that is gone (or not ours to read) counts 0. @param {number[]} pids */
function cpuSecondsOf(pids) {
  let ticks = 0;
  for (const p of pids) {
    try {
      ticks += statTicks(`/proc/${p}/stat`);
    } catch {
      // gone, or not ours to read
    }
  }
  return ticks / CLOCK_TICKS;
}

/** CPU seconds (user + system) used so far by a process tree. @param {number} pid */
export const cpuSeconds = (pid) => cpuSecondsOf(processTree(pid));

/**
 * CPU seconds of a process tree split by thread: each process's main thread (the event loop) and all
 * its other threads (V8's GC helpers, libuv's pool, the SQLite checkpointer worker). @param {number} pid
 */
export function cpuSecondsByThread(pid) {
  let main = 0;
  let other = 0;
  /** Every other thread's seconds by its id: which of them works is told by the difference of two readings. @type {Map<string, number>} */
  const byTask = new Map();
  for (const p of processTree(pid)) {
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const ticks = statTicks(`/proc/${p}/task/${task}/stat`);
        if (Number(task) === p) main += ticks;
        else {
          other += ticks;
          byTask.set(`${p}/${task}`, ticks / CLOCK_TICKS);
        }
      }
    } catch {
      // gone
    }
  }
  return { main: main / CLOCK_TICKS, other: other / CLOCK_TICKS, byTask };
}

/**
 * The other threads' µs per refresh between two readings, busiest first, those above 2 µs: node names no
 * thread, but the verifier and the checkpointer each stand out as one thread, V8's GC helpers as several.
 * @param {ReturnType<typeof cpuSecondsByThread>} before @param {ReturnType<typeof cpuSecondsByThread>} after @param {number} ok
 */
function busiestThreads(before, after, ok) {
  return [...after.byTask].map(([task, s]) => ((s - (before.byTask.get(task) ?? 0)) * 1e6) / ok)
    .filter((us) => us > 2).sort((a, b) => b - a).map(Math.round);
}

/**
 * A server process of one row. Its output goes to a log file (or is discarded).
 * @param {{ args: string[], env: Record<string, string>, log?: string }} spec
 */
function startProcess(spec) {
  const out = spec.log ? openSync(spec.log, 'a') : 'ignore';
  const child = spawn(process.execPath, spec.args, {
    cwd: ROOT, env: { ...process.env, ...spec.env }, stdio: ['ignore', out, out],
  });
  let exited = false;
  const done = new Promise((resolve) => child.once('exit', () => {
    exited = true;
    resolve(undefined);
  }));
  return {
    child,
    get exited() {
      return exited;
    },
    /** SIGTERM (so a CPU profile is written), SIGKILL after a grace period. */
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        for (const p of processTree(/** @type {number} */ (child.pid)).reverse()) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }, 15_000);
      await done;
      clearTimeout(timer);
    },
  };
}

/** @param {string} url @param {{ exited: boolean }} proc @param {number} [timeoutMs] */
async function waitHealthy(url, proc, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`the server exited before it was ready (${url})`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not yet listening
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the server did not become ready: ${url}`);
}

/** @param {string} url @param {RequestInit & { json?: unknown }} [init] */
async function call(url, init = {}) {
  const { json, ...rest } = init;
  const headers = /** @type {Record<string, string>} */ ({ ...(/** @type {any} */ (rest.headers) ?? {}) });
  if (json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body, signal: AbortSignal.timeout(ANSWER_MS) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

/** Runs `work` for indices 0..count-1, `width` at a time. @template T @param {number} count @param {number} width @param {(i: number) => Promise<T>} work */
async function inParallel(count, width, work) {
  /** @type {T[]} */
  const out = new Array(count);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, count) }, async () => {
    while (next < count) {
      const i = next++;
      out[i] = await work(i);
    }
  }));
  return out;
}

// ── targets ────────────────────────────────────────────────────────────────────────────────────────

/**
 * @typedef {{ kind: 'sqlite', path: string } | { kind: 'postgres', url: string }} StoreLocation
 * @typedef {{ url: string, pid: number, setup: Setup, mint(count: number): Promise<TokenState[]>,
 *   stop(): Promise<void>, fillSeconds?: number, store?: StoreLocation,
 *   storePids?: () => Promise<number[]> }} Target
 */

/** The root of the Rotor build the rows run (BENCH_ROTOR_BUILD names another build's root). */
const rotorBuild = () => process.env.BENCH_ROTOR_BUILD ?? ROOT;

/** @param {Row} row @param {RunOptions} options @param {string} dir @returns {Promise<Target>} */
async function startTarget(row, options, dir) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // BENCH_NODE_ARGS: extra flags for every server process (e.g. `--trace-gc`, with BENCH_LOGS).
  const nodeArgs = [
    ...(options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(options.profileDir, row.id)}`] : []),
    ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ];
  const log = options.logDir ? join(options.logDir, `${row.id}.log`) : undefined;

  if (row.target === 'floor') {
    const proc = startProcess({
      args: [...nodeArgs, join(ROOT, 'bench/targets/floor.mjs')], log,
      env: { PORT: String(port), FLOOR_MODE: row.floorMode ?? 'sign', FLOOR_DIR: dir, FLOOR_FAULT: row.fault ?? 'none' },
    });
    await waitHealthy(`${url}/healthz`, proc);
    return {
      url, pid: /** @type {number} */ (proc.child.pid), setup: {},
      mint: async (count) => (await call(`${url}/setup`, { method: 'POST', json: { count } })).states,
      stop: () => proc.stop(),
    };
  }

  if (row.target === 'oidc') {
    const proc = startProcess({ args: [...nodeArgs, join(ROOT, 'bench/targets/oidc.mjs')], log, env: { PORT: String(port), NODE_ENV: 'production' } });
    await waitHealthy(`${url}/healthz`, proc);
    const basic = Buffer.from('bench:bench-client-secret-0123456789abcdef').toString('base64');
    return {
      url, pid: /** @type {number} */ (proc.child.pid), setup: { basic },
      mint: async (count) => (await call(`${url}/bench/setup`, { method: 'POST', json: { count } })).states,
      stop: () => proc.stop(),
    };
  }

  // Rotor: `rotor serve` from the build, configured only through its environment (SPEC §6).
  /** @type {Record<string, string>} */
  const env = {
    ROTOR_HOST: '127.0.0.1', ROTOR_PORT: String(port), ROTOR_ADMIN_TOKEN: ADMIN_TOKEN, ROTOR_ISSUER: ISSUER,
    ROTOR_LOG_LEVEL: 'info',
    // All load comes from one address: the limiter stays on (its cost is part of the figure) with limits
    // far above what one machine can send.
    ROTOR_RATE_LIMITS: 'refreshPerIp=1000000000,issuePerApp=1000000000,adminPerIp=1000000',
    ...row.env,
  };
  // The master key is set, not left to the key file beside the SQLite database, so that the harness can
  // mint the refresh tokens of the sessions it fills in with the server's own code (fillSqlite).
  const masterKey = randomBytes(32).toString('base64');
  env.ROTOR_MASTER_KEY = masterKey;
  /** @type {(() => Promise<void>) | null} */
  let dropDatabase = null;
  /** @type {StoreLocation} */
  let store;
  /** @type {(() => Promise<number[]>) | undefined} */
  let storePids;
  if (row.store === 'postgres') {
    const name = `rotor_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const base = new URL(PG_ADMIN_URL);
    base.pathname = `/${name}`;
    store = { kind: 'postgres', url: base.toString() };
    // The PostgreSQL backends serving this row's database: their CPU is reported beside the server's.
    storePids = async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        return (await c.query('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name])).rows.map((r) => Number(r.pid));
      } finally {
        await c.end();
      }
    };
    // BENCH_PG_PARAMS: Rotor's URL settings for this row, e.g. `pool_max=4`.
    for (const [k, v] of new URLSearchParams(process.env.BENCH_PG_PARAMS ?? '')) base.searchParams.set(k, v);
    env.ROTOR_DATABASE_URL = base.toString();
    dropDatabase = async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  } else {
    store = { kind: 'sqlite', path: join(dir, 'rotor.db') };
    env.ROTOR_DATABASE_URL = `sqlite:${store.path}`;
  }
  // BENCH_ROTOR_BUILD names another build's root (its dist/ beside a node_modules) to compare two builds.
  const main = join(rotorBuild(), 'dist/src/cli/main.js');
  const proc = startProcess({ args: [...nodeArgs, main, 'serve'], env, log });
  const stop = async () => {
    await proc.stop();
    await dropDatabase?.();
  };
  try {
    await waitHealthy(`${url}/healthz`, proc);
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const created = await call(`${url}/admin/apps`, {
      method: 'POST', headers: admin, json: { name: 'bench', profile: row.profile ?? 'native', policy: row.policy ?? {} },
    });
    // client_id = the app id (SPEC §4.2 accepts id or name; the id is what OAuth clients are usually given).
    const basic = Buffer.from(`${encodeURIComponent(created.id)}:${encodeURIComponent(created.appKey)}`).toString('base64');
    /** @type {number | undefined} */
    let fillSeconds;
    /** @type {((count: number) => Promise<TokenState[]>) | null} */
    let seeded = null;
    if (row.fill) {
      if (store.kind !== 'sqlite') throw new Error('fill is for SQLite rows');
      const started = Date.now();
      const generation = row.fillGeneration ?? 1;
      fillSqlite(store.path, created.id, row.fill, generation);
      fillSeconds = (Date.now() - started) / 1000;
      const ids = await refreshIds(masterKey);
      const fill = row.fill;
      // The row's load runs on filled sessions picked at random (each a cold row somewhere in the table),
      // their live generation's token minted as the server would mint it.
      seeded = async (count) => pickDistinct(fill, count).map((i) => ({ refresh: ids.opaque(fillSessionId(i), generation) }));
    }
    // Readiness of a cluster: every worker must answer before load starts.
    await waitHealthy(`${url}/readyz`, proc);
    return {
      url, pid: /** @type {number} */ (proc.child.pid), fillSeconds, store, storePids,
      setup: { appId: created.id, appName: created.name, appKey: created.appKey, basic, issuer: ISSUER },
      mint: seeded ?? ((count) => inParallel(count, 8, async (i) => {
        // A DPoP row's sessions are bound from issuance (SPEC §4.1 dpopJkt), each to a key of its own.
        const key = row.dpop ? newDpopKey() : null;
        const pair = await call(`${url}/v1/apps/bench/sessions`, {
          method: 'POST', headers: { authorization: `Bearer ${created.appKey}` },
          json: { subject: `user-${i % 1000}`, ip: '127.0.0.1', userAgent: 'rotor-bench', ...(key ? { dpopJkt: key.jkt } : {}) },
        });
        return { refresh: pair.refreshToken, access: pair.accessToken, ...(key ? { dpop: key.jwk } : {}) };
      })),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The id of filled session `i`: a valid ULID (Crockford base32, first character 0–7) in a namespace of
 * its own, `0BENCH` and 20 digits, in insertion order like real time-ordered ids.
 * @param {number} i
 */
export const fillSessionId = (i) => `0BENCH${String(i).padStart(20, '0')}`;

/** `count` distinct integers in [0, range), in random order. @param {number} range @param {number} count */
export function pickDistinct(range, count) {
  if (count > range) throw new Error(`cannot pick ${count} of ${range}`);
  /** @type {Set<number>} */
  const picked = new Set();
  while (picked.size < count) picked.add(randomBytes(6).readUIntBE(0, 6) % range);
  return [...picked];
}

/**
 * The server's own refresh-token code (dist/src/domain/refresh_ids.js of the build the rows run) under
 * the row's master key: the tokens of filled sessions are minted exactly as the server mints them.
 * @param {string} masterKeyBase64 @returns {Promise<{ opaque(sessionId: string, generation: number): string }>}
 */
async function refreshIds(masterKeyBase64) {
  const dist = join(rotorBuild(), 'dist/src');
  const { RefreshIds } = await import(pathToFileURL(join(dist, 'domain/refresh_ids.js')).href);
  const { MasterKey } = await import(pathToFileURL(join(dist, 'crypto/master_key.js')).href);
  return new RefreshIds(MasterKey.fromBase64(masterKeyBase64));
}

/**
 * Fills a Rotor SQLite file with `count` live chain sessions (SPEC §2.9: a session's refresh state is
 * its row): 1,000 subjects, and `count` sessions (ids `fillSessionId(i)`, started over the last 30 days,
 * 90-day lifetime) whose live refresh generation is `generation`, minted within the last 15 minutes and
 * valid for 30 days. With one row per session the history of a session is nothing but its generation
 * number: a session "rotated 100 times" is a row with generation 101 — exactly the row the server leaves
 * after 100 rotations (test/storage_growth.test.ts), and no `refresh_tokens` rows. The rows are generated
 * inside SQLite (INSERT … SELECT over a recursive counter, one transaction), about 1 s per 100,000
 * sessions; the server is running meanwhile (WAL; it is idle). Tokens for these sessions are computed,
 * not stored: `refreshIds(masterKey).opaque(fillSessionId(i), generation)`.
 * @param {string} path @param {string} appId @param {number} count @param {number} [generation]
 */
export function fillSqlite(path, appId, count, generation = 1) {
  const db = new Database(path);
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = OFF');
  const columns = /** @type {{ name: string }[]} */ (db.pragma('table_info(sessions)')).map((c) => c.name);
  if (!columns.includes('generation')) {
    db.close();
    throw new Error('the fill needs the one-row-per-session schema (a build from commit a0c33b2 on)');
  }
  const now = Date.now();
  const day = 86_400_000;
  db.transaction(() => {
    db.prepare(`
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
      INSERT OR IGNORE INTO subjects (app_id, subject, claims, status, created_at, updated_at)
      SELECT ?, 'fill-' || i, '{"role":"user"}', 'active', ?, ? FROM n`).run(appId, now, now);
    // Per session: t = the live generation's mint time (now minus 0–899 s), started = t − (i mod 30) days.
    db.prepare(`
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $count - 1),
        t(i, issued) AS (SELECT i, $now - (i * 7919 % 900) * 1000 FROM n)
      INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
        last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at, locator,
        generation, refresh_issued_at, refresh_not_before, refresh_expires_at, successor_sealed)
      SELECT '0BENCH' || printf('%020d', i), $app, 'fill-' || (i % 1000), '{}', NULL, issued - (i % 30) * $day, issued,
        issued - (i % 30) * $day + 90 * $day, '10.0.0.1', 'fill', '10.0.0.1', 'fill', NULL, NULL, issued + 30 * $day, NULL,
        $generation, issued, issued, issued + 30 * $day, NULL
      FROM t`).run({ count, now, day, app: appId, generation });
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

// ── bytes on disk per session ──────────────────────────────────────────────────────────────────────

/**
 * Bytes the session state occupies in a store: the `sessions` and `refresh_tokens` tables with all their
 * indexes (SQLite: `dbstat` page sizes, read through the WAL; PostgreSQL: `pg_total_relation_size`, heap,
 * indexes and TOAST, dead tuples included), and how many `refresh_tokens` rows there are.
 * @param {StoreLocation} store @returns {Promise<{ bytes: number, refreshRows: number, tables: Record<string, number> }>}
 */
export async function sessionStateBytes(store) {
  if (store.kind === 'sqlite') {
    const db = new Database(store.path, { readonly: true, fileMustExist: true });
    try {
      const names = /** @type {string[]} */ (db.prepare(
        `SELECT name FROM sqlite_schema WHERE tbl_name IN ('sessions', 'refresh_tokens') AND type IN ('table', 'index')`,
      ).pluck().all());
      /** @type {Record<string, number>} */
      const tables = {};
      for (const { name, bytes } of /** @type {{ name: string, bytes: number }[]} */ (db.prepare(
        `SELECT name, SUM(pgsize) AS bytes FROM dbstat WHERE name IN (${names.map(() => '?').join(', ')}) GROUP BY name`,
      ).all(...names))) tables[name] = bytes;
      const refreshRows = /** @type {number} */ (db.prepare('SELECT count(*) FROM refresh_tokens').pluck().get());
      return { bytes: Object.values(tables).reduce((a, b) => a + b, 0), refreshRows, tables };
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: store.url });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT c.relname AS name, pg_total_relation_size(c.oid)::bigint AS bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname IN ('sessions', 'refresh_tokens') AND c.relkind = 'r' AND n.nspname = current_schema()`);
    /** @type {Record<string, number>} */
    const tables = Object.fromEntries(rows.map((r) => [r.name, Number(r.bytes)]));
    const refreshRows = Number((await client.query('SELECT count(*) AS n FROM refresh_tokens')).rows[0].n);
    return { bytes: Object.values(tables).reduce((a, b) => a + b, 0), refreshRows, tables };
  } finally {
    await client.end();
  }
}

/**
 * Chains `rotations` renewals on each of `states`, `width` chains at a time, through the row's protocol.
 * @param {Target} target @param {import('./protocols.mjs').Protocol} proto @param {TokenState[]} states
 * @param {number} rotations @param {number} width
 */
async function rotateEach(target, proto, states, rotations, width) {
  return inParallel(states.length, width, async (i) => {
    let state = /** @type {TokenState} */ (states[i]);
    for (let r = 0; r < rotations; r += 1) {
      const c = proto.request(state, target.setup);
      const res = await fetch(target.url + c.path, { method: c.method, headers: c.headers, body: c.body, signal: AbortSignal.timeout(ANSWER_MS) });
      const text = await res.text();
      state = proto.next(res.status, text ? JSON.parse(text) : undefined, state);
    }
    return state;
  });
}

/**
 * The row's "bytes on disk per session after 100 rotations", on a server of its own with a fresh store:
 * the session-state bytes with the app alone, then `sessions` sessions issued through the API and each
 * rotated once, then 99 more times; (after − before) / sessions, both times. Nothing here is timed.
 * @param {Row} row @param {RunOptions} options @returns {Promise<DiskResult>}
 */
export async function measureDisk(row, options) {
  const sessions = options.diskSessions ?? 1000;
  const rotations = options.diskRotations ?? 100;
  const dir = mkdtempSync(join(tmpdir(), `rotor-bench-disk-${row.id}-`));
  const started = Date.now();
  /** @type {Target | undefined} */
  let target;
  try {
    target = await startTarget({ ...row, fill: undefined }, { ...options, profileDir: undefined }, dir);
    const store = /** @type {StoreLocation} */ (target.store);
    const proto = protocol(row.protocol);
    const empty = await sessionStateBytes(store);
    const issued = await target.mint(sessions);
    const once = await rotateEach(target, proto, issued, 1, 32);
    const first = await sessionStateBytes(store);
    await rotateEach(target, proto, once, rotations - 1, 32);
    const last = await sessionStateBytes(store);
    return {
      store: store.kind, sessions, rotations,
      bytesPerSession: (last.bytes - empty.bytes) / sessions,
      bytesPerSessionAfterFirst: (first.bytes - empty.bytes) / sessions,
      refreshRowsPerSession: (last.refreshRows - empty.refreshRows) / sessions,
      seconds: (Date.now() - started) / 1000,
      tables: Object.fromEntries(Object.entries(last.tables).map(([k, v]) => [k, v - (empty.tables[k] ?? 0)])),
    };
  } finally {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ── one row ────────────────────────────────────────────────────────────────────────────────────────

/**
 * Forks the load generator and runs its phases. `onMeasure` is called when the measured phase starts.
 * @param {import('./loadgen.mjs').LoadConfig} config @param {() => void} onMeasure
 * @returns {Promise<{ phases: import('./loadgen.mjs').PhaseResult[], distinctTokens: number }>}
 */
export function runLoadgen(config, onMeasure) {
  return new Promise((resolve, reject) => {
    const child = fork(join(ROOT, 'bench/loadgen.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let settled = false;
    child.on('message', (/** @type {any} */ message) => {
      if (message?.type === 'phase' && message.name === 'measure') onMeasure();
      if (message?.type === 'result') {
        settled = true;
        resolve(message.result);
      }
      if (message?.type === 'error') {
        settled = true;
        reject(new Error(`load generator failed: ${message.message}`));
      }
    });
    child.once('exit', (code) => {
      if (!settled) reject(new Error(`load generator exited with ${code}`));
    });
    child.send({ type: 'run', config });
  });
}

/**
 * Runs one row end to end and returns its figures; `skipped` says why a row could not run.
 * @param {Row} row @param {RunOptions} options @returns {Promise<RowResult>}
 */
export async function runRow(row, options) {
  const why = row.requires?.() ?? null;
  if (why) return { id: row.id, label: row.label, skipped: why };
  // A row with `disk` also measures its store's bytes per session after 100 rotations, on a server of its
  // own once the timed run is over (options.disk: 'no' skips that, 'only' skips the timed run).
  const disk = row.disk && options.disk !== 'no';
  if (options.disk === 'only') {
    return disk ? { id: row.id, label: row.label, disk: await measureDisk(row, options) } : { id: row.id, label: row.label, skipped: 'no disk figure' };
  }
  const timed = await runTimed(row, options);
  if (disk && !timed.skipped) timed.disk = await measureDisk(row, options);
  return timed;
}

/** @param {Row} row @param {RunOptions} options @returns {Promise<RowResult>} */
async function runTimed(row, options) {
  const dir = mkdtempSync(join(tmpdir(), `rotor-bench-${row.id}-`));
  /** @type {Target | undefined} */
  let target;
  try {
    target = await startTarget(row, options, dir);
    const proto = protocol(row.protocol);
    const perPhase = options.connections * 2; // the connections' first tokens, then as many spares
    const [probe, ...states] = await target.mint(1 + 2 * perPhase);
    if (row.policy?.dpopNonce) target.setup.dpopNonce = await serverNonce(target, proto, /** @type {TokenState} */ (probe), options);
    // Probe: one renewal must work, or the row's endpoint is not there (a dialect still being built).
    const call1 = proto.request(/** @type {TokenState} */ (probe), target.setup);
    const res = await fetch(target.url + call1.path, { method: call1.method, headers: call1.headers, body: call1.body, signal: AbortSignal.timeout(ANSWER_MS) });
    const answer = await res.text();
    if (res.status !== 200) return { id: row.id, label: row.label, skipped: `its renewal endpoint answered ${res.status}` };
    if (row.dpop) await checkDpop(target, proto, /** @type {TokenState} */ (probe), call1, JSON.parse(answer));
    if (row.policy?.dpopNonce && !res.headers.get('dpop-nonce')) throw new Error('DPoP check: the probe\'s answer carries no next DPoP-Nonce');

    let peakRss = 0;
    let cpuAtStart = 0;
    let threadsAtStart = { main: 0, other: 0, byTask: new Map() };
    /** @type {number[]} */
    let storePids = [];
    let storeCpuAtStart = 0;
    /** @type {Promise<void> | undefined} */
    let storeStarted;
    /** @type {NodeJS.Timeout | undefined} */
    let sampler;
    const pid = target.pid;
    const result = await runLoadgen({
      url: target.url, protocol: row.protocol, setup: target.setup, connections: options.connections,
      timeoutSeconds: options.timeoutSeconds,
      phases: [
        { name: 'warmup', seconds: options.warmupSeconds, states: states.slice(0, perPhase) },
        { name: 'measure', seconds: options.durationSeconds, states: states.slice(perPhase) },
      ],
    }, () => {
      cpuAtStart = cpuSeconds(pid);
      threadsAtStart = cpuSecondsByThread(pid);
      // The pool's connections are all open after the warm-up; asked for as the measured phase starts.
      storeStarted = target?.storePids?.().then((pids) => {
        storePids = pids;
        storeCpuAtStart = cpuSecondsOf(pids);
      });
      sampler = setInterval(() => {
        peakRss = Math.max(peakRss, rssMb(pid));
      }, 250);
    });
    clearInterval(sampler);
    peakRss = Math.max(peakRss, rssMb(pid));
    await storeStarted;
    const cpuUsed = cpuSeconds(pid) - cpuAtStart;
    const threads = cpuSecondsByThread(pid);
    const storeCpu = cpuSecondsOf(storePids) - storeCpuAtStart;
    const measured = /** @type {import('./loadgen.mjs').PhaseResult} */ (result.phases.find((p) => p.name === 'measure'));
    // Every accepted DPoP refresh wrote its proof into the replay cache (a row until the proof's window
    // has passed, ten minutes: nothing is pruned during a run).
    const dpopProofs = row.dpop && target.store ? await dpopProofCount(target.store) : undefined;
    if (dpopProofs !== undefined) {
      const accepted = result.phases.reduce((n, p) => n + p.ok, 0);
      if (dpopProofs < accepted) throw new Error(`DPoP check: ${accepted} refreshes were accepted but the replay cache holds ${dpopProofs} proofs`);
    }
    return {
      id: row.id, label: row.label, ok: measured.ok,
      refreshPerSecond: measured.refreshPerSecond, p50: measured.p50, p99: measured.p99,
      errors: measured.errors, reasons: measured.reasons, rssMb: peakRss,
      cpuUsPerRefresh: measured.ok > 0 ? (cpuUsed * 1e6) / measured.ok : undefined,
      mainThreadCpuUsPerRefresh: measured.ok > 0 ? ((threads.main - threadsAtStart.main) * 1e6) / measured.ok : undefined,
      otherThreadsCpuUsPerRefresh: measured.ok > 0 ? ((threads.other - threadsAtStart.other) * 1e6) / measured.ok : undefined,
      otherThreadsUsPerRefresh: measured.ok > 0 ? busiestThreads(threadsAtStart, threads, measured.ok) : undefined,
      storeCpuUsPerRefresh: storePids.length > 0 && measured.ok > 0 ? (storeCpu * 1e6) / measured.ok : undefined,
      generatorCores: measured.generatorCores, dpopProofs, proofsSignedLive: row.dpop ? measured.proofsSignedLive : undefined,
      fillSeconds: target.fillSeconds, warmup: result.phases.find((p) => p.name === 'warmup'),
    };
  } finally {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ── DPoP ───────────────────────────────────────────────────────────────────────────────────────────

/**
 * The DPoP row's own checks, on the probe session before any load, so that the row cannot silently
 * measure bearer refreshes: the probe (a fresh proof by the session's key) was answered `tokenType:
 * "DPoP"` with `cnf.jkt` of that key in the access token; the successor is then refused with the probe's
 * proof again (a replayed `jti`), with no proof, and with a fresh proof by another key — and still renews
 * with a fresh proof by its own key (the refusals consumed nothing). Throws on the first that fails.
 * @param {Target} target @param {import('./protocols.mjs').Protocol} proto @param {TokenState} probe
 * @param {import('./protocols.mjs').Call} used the probe's call @param {any} answer the probe's answer
 */
async function checkDpop(target, proto, probe, used, answer) {
  const fail = (/** @type {string} */ what) => {
    throw new Error(`DPoP check: ${what}`);
  };
  if (!proto.dpop) fail('the row\'s protocol carries no DPoP proofs');
  const envelope = /** @type {import('./protocols.mjs').DpopEnvelope} */ (proto.dpop);
  const tokenType = answer?.[envelope.typeField];
  if (tokenType !== 'DPoP') fail(`the probe was answered ${envelope.typeField} ${tokenType}`);
  const claims = JSON.parse(Buffer.from(String(answer?.[envelope.accessField]).split('.')[1] ?? '', 'base64url').toString('utf8'));
  if (!probe.dpop || claims.cnf?.jkt !== thumbprint(probe.dpop)) fail('the access token does not carry cnf.jkt of the session\'s key');
  const next = proto.next(200, answer, probe);
  const fresh = proto.request(next, target.setup);
  const { dpop: _proof, ...withoutProof } = fresh.headers;
  const attempts = [
    ['a replayed proof', { ...withoutProof, dpop: used.headers.dpop ?? '' }],
    ['no proof', withoutProof],
    ['another key\'s proof', { ...withoutProof, dpop: dpopProof(newDpopKey().jwk, fresh.method, `${target.setup.issuer}${fresh.path}`, target.setup.dpopNonce) }],
  ];
  for (const [what, headers] of /** @type {[string, Record<string, string>][]} */ (attempts)) {
    const res = await fetch(target.url + fresh.path, { method: fresh.method, headers, body: fresh.body, signal: AbortSignal.timeout(ANSWER_MS) });
    const body = await res.text();
    const code = res.status === 200 ? undefined : JSON.parse(body)?.[envelope.codeField];
    if (res.status !== envelope.refusalStatus || code !== 'invalid_dpop_proof') {
      fail(`${what} was answered ${res.status} ${code ?? ''}, not ${envelope.refusalStatus} invalid_dpop_proof`);
    }
  }
  const res = await fetch(target.url + fresh.path, { method: fresh.method, headers: fresh.headers, body: fresh.body, signal: AbortSignal.timeout(ANSWER_MS) });
  const text = await res.text();
  try {
    proto.next(res.status, text ? JSON.parse(text) : undefined, next);
  } catch (reason) {
    fail(`after the refusals the session's own fresh proof failed: ${reason}`);
  }
}

/**
 * A server nonce for a row whose app demands them (RFC 9449 §8), as a client gets its first one: the probe's
 * refresh with a proof carrying none must be refused `use_dpop_nonce` with a `DPoP-Nonce` header (and, the
 * probe renewing afterwards, consume nothing). Every proof of the row then carries that nonce. It stays
 * fresh for the proof window (five minutes), so a longer row would need the generator to take each answer's
 * `DPoP-Nonce` as a real client does; such a row is refused here instead.
 * @param {Target} target @param {import('./protocols.mjs').Protocol} proto @param {TokenState} probe @param {RunOptions} options
 */
async function serverNonce(target, proto, probe, options) {
  const envelope = proto.dpop;
  if (!envelope) throw new Error('DPoP check: a nonce row\'s protocol carries no DPoP proofs');
  if (options.warmupSeconds + options.durationSeconds > 240) throw new Error('DPoP check: a nonce row runs for at most 240 s (its one nonce would go stale)');
  const call = proto.request(probe, target.setup);
  const res = await fetch(target.url + call.path, { method: call.method, headers: call.headers, body: call.body, signal: AbortSignal.timeout(ANSWER_MS) });
  const body = await res.text();
  const code = res.status === 200 ? undefined : JSON.parse(body)?.[envelope.codeField];
  const nonce = res.headers.get('dpop-nonce');
  if (res.status !== envelope.refusalStatus || code !== 'use_dpop_nonce' || !nonce) {
    throw new Error(`DPoP check: a proof without a nonce was answered ${res.status} ${code ?? ''} ${nonce ? 'with' : 'without'} DPoP-Nonce, not ${envelope.refusalStatus} use_dpop_nonce with one`);
  }
  return nonce;
}

/** Rows in the store's DPoP replay cache. @param {StoreLocation} store */
async function dpopProofCount(store) {
  if (store.kind === 'postgres') {
    const c = new pg.Client({ connectionString: store.url });
    await c.connect();
    try {
      return Number((await c.query('SELECT count(*) AS n FROM dpop_proofs')).rows[0].n);
    } finally {
      await c.end();
    }
  }
  const db = new Database(store.path, { readonly: true, fileMustExist: true });
  try {
    // Schema 8 keeps marks in dpop_marks, and the release before's in dpop_proofs (a build before it has only those).
    const tables = /** @type {string[]} */ (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('dpop_proofs', 'dpop_marks')").pluck().all());
    return tables.reduce((n, table) => n + /** @type {number} */ (db.prepare(`SELECT count(*) FROM ${table}`).pluck().get()), 0);
  } finally {
    db.close();
  }
}

// ── report ─────────────────────────────────────────────────────────────────────────────────────────

/** @param {string} name */
function versionOf(name) {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

export function environment() {
  const db = new Database(':memory:');
  const sqlite = /** @type {{ v: string }} */ (db.prepare('SELECT sqlite_version() AS v').get()).v;
  db.close();
  const cpu = cpus();
  return {
    machine: `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    versions: {
      rotor: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
      'oidc-provider': versionOf('oidc-provider'), fastify: versionOf('fastify'), 'better-sqlite3': versionOf('better-sqlite3'),
      sqlite, autocannon: versionOf('autocannon'),
    },
  };
}

/** @param {number | undefined} n @param {number} [digits] */
const fmt = (n, digits = 0) => (n === undefined || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/**
 * The one table: refresh/s, p50, p99, errors, server RSS, server CPU per refresh, ratio to the baseline.
 * @param {RowResult[]} results @param {{ baselineId?: string, header?: string[] }} [options]
 */
export function formatTable(results, options = {}) {
  const baseline = results.find((r) => r.id === options.baselineId && r.refreshPerSecond);
  // Bytes on disk per session after 100 rotations: only rows with a disk figure have one.
  const withDisk = results.some((r) => r.disk);
  const head = ['row', 'refresh/s', 'p50 ms', 'p99 ms', 'errors', 'RSS MB', 'CPU µs/refresh', '× oidc-provider',
    ...(withDisk ? ['disk B/session'] : [])];
  const diskCell = (/** @type {RowResult} */ r) => (withDisk ? [r.disk ? fmt(r.disk.bytesPerSession) : ''] : []);
  const lines = results.map((r) => r.skipped
    ? [r.label, `skipped: ${r.skipped}`, '', '', '', '', '', '', ...(withDisk ? [''] : [])]
    : [
      r.label, fmt(r.refreshPerSecond), fmt(r.p50, 1), fmt(r.p99, 1), fmt(r.errors), fmt(r.rssMb), fmt(r.cpuUsPerRefresh),
      baseline?.refreshPerSecond && r.refreshPerSecond !== undefined ? `${fmt(r.refreshPerSecond / baseline.refreshPerSecond, 2)}×` : '—',
      ...diskCell(r),
    ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (/** @type {string[]} */ cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [...(options.header ?? []), row(head), rule, ...lines.map(row)].join('\n');
}

export { existsSync, mkdirSync };
