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
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { protocol } from './protocols.mjs';

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * @typedef {import('./protocols.mjs').TokenState} TokenState
 * @typedef {import('./protocols.mjs').Setup} Setup
 * @typedef {{
 *   id: string, label: string, target: 'rotor' | 'oidc' | 'floor', protocol: string,
 *   store?: 'sqlite' | 'postgres', profile?: string, policy?: Record<string, unknown>, env?: Record<string, string>,
 *   floorMode?: 'sign' | 'sqlite', fault?: 'none' | 'duplicate' | 'status' | 'same', fill?: number,
 *   baseline?: boolean, requires?: () => string | null,
 * }} Row
 * @typedef {{ durationSeconds: number, warmupSeconds: number, connections: number, profileDir?: string,
 *   logDir?: string, timeoutSeconds?: number }} RunOptions
 * @typedef {{ id: string, label: string, skipped?: string, refreshPerSecond?: number, p50?: number, p99?: number,
 *   errors?: number, reasons?: Record<string, number>, rssMb?: number, cpuUsPerRefresh?: number, ok?: number,
 *   fillSeconds?: number, warmup?: unknown, generatorCores?: number }} RowResult
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

/** CPU seconds (user + system) used so far by a process tree. @param {number} pid */
export function cpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks / CLOCK_TICKS;
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
  const res = await fetch(url, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
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
 * @typedef {{ url: string, pid: number, setup: Setup, mint(count: number): Promise<TokenState[]>,
 *   stop(): Promise<void>, fillSeconds?: number }} Target
 */

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
    ROTOR_HOST: '127.0.0.1', ROTOR_PORT: String(port), ROTOR_ADMIN_TOKEN: ADMIN_TOKEN, ROTOR_ISSUER: 'http://rotor.bench',
    ROTOR_LOG_LEVEL: 'info',
    // All load comes from one address: the limiter stays on (its cost is part of the figure) with limits
    // far above what one machine can send.
    ROTOR_RATE_LIMITS: 'refreshPerIp=1000000000,issuePerApp=1000000000,adminPerIp=1000000',
    ...row.env,
  };
  /** @type {(() => Promise<void>) | null} */
  let dropDatabase = null;
  if (row.store === 'postgres') {
    const name = `rotor_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const base = new URL(PG_ADMIN_URL);
    base.pathname = `/${name}`;
    // BENCH_PG_PARAMS: Rotor's URL settings for this row, e.g. `pool_max=4`.
    for (const [k, v] of new URLSearchParams(process.env.BENCH_PG_PARAMS ?? '')) base.searchParams.set(k, v);
    env.ROTOR_DATABASE_URL = base.toString();
    env.ROTOR_MASTER_KEY = randomBytes(32).toString('base64');
    dropDatabase = async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  } else {
    env.ROTOR_DATABASE_URL = `sqlite:${join(dir, 'rotor.db')}`;
  }
  // BENCH_ROTOR_BUILD names another build's root (its dist/ beside a node_modules) to compare two builds.
  const main = join(process.env.BENCH_ROTOR_BUILD ?? ROOT, 'dist/src/cli/main.js');
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
    if (row.fill) {
      const started = Date.now();
      fillSqlite(join(dir, 'rotor.db'), created.id, row.fill);
      fillSeconds = (Date.now() - started) / 1000;
    }
    // Readiness of a cluster: every worker must answer before load starts.
    await waitHealthy(`${url}/readyz`, proc);
    return {
      url, pid: /** @type {number} */ (proc.child.pid), fillSeconds,
      setup: { appId: created.id, appName: created.name, appKey: created.appKey, basic },
      mint: (count) => inParallel(count, 8, async (i) => {
        const pair = await call(`${url}/v1/apps/bench/sessions`, {
          method: 'POST', headers: { authorization: `Bearer ${created.appKey}` },
          json: { subject: `user-${i % 1000}`, ip: '127.0.0.1', userAgent: 'rotor-bench' },
        });
        return { refresh: pair.refreshToken, access: pair.accessToken };
      }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Fills a Rotor SQLite file with `count` live sessions (1,000 subjects, one unconsumed refresh record
 * each, random 43-character record ids like real SHA-256 ids, expiries spread over 30 days), in one
 * transaction of three INSERT … SELECT over a recursive counter: the rows are generated inside SQLite,
 * about 1 s per 100,000 sessions. The server is running meanwhile (WAL; it is idle).
 * @param {string} path @param {string} appId @param {number} count
 */
export function fillSqlite(path, appId, count) {
  const db = new Database(path);
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = OFF');
  const now = Date.now();
  const day = 86_400_000;
  db.transaction(() => {
    db.prepare(`
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
      INSERT OR IGNORE INTO subjects (app_id, subject, claims, status, created_at, updated_at)
      SELECT ?, 'fill-' || i, '{"role":"user"}', 'active', ?, ? FROM n`).run(appId, now, now);
    db.prepare(`
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
      INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
        last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at)
      SELECT printf('0FILL%021d', i), ?, 'fill-' || (i % 1000), '{}', NULL, ? - (i % 30) * ?, ?, ? + 90 * ?, '10.0.0.1', 'fill',
        '10.0.0.1', 'fill', NULL, NULL, ? + 30 * ? FROM n`).run(count, appId, now, day, now, now, day, now, day);
    db.prepare(`
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
      INSERT INTO refresh_tokens (id, session_id, app_id, parent_id, issued_at, not_before, expires_at, consumed_at, successor_id, successor_sealed)
      SELECT substr(hex(randomblob(22)), 1, 43), printf('0FILL%021d', i), ?, NULL, ?, ?, ? + (1 + abs(random()) % 30) * ?, NULL, NULL, NULL
      FROM n`).run(count, appId, now, now, now, day);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
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
  const dir = mkdtempSync(join(tmpdir(), `rotor-bench-${row.id}-`));
  let target;
  try {
    target = await startTarget(row, options, dir);
    const proto = protocol(row.protocol);
    const perPhase = options.connections * 2; // the connections' first tokens, then as many spares
    const [probe, ...states] = await target.mint(1 + 2 * perPhase);
    // Probe: one renewal must work, or the row's endpoint is not there (a dialect still being built).
    const call1 = proto.request(/** @type {TokenState} */ (probe), target.setup);
    const res = await fetch(target.url + call1.path, { method: call1.method, headers: call1.headers, body: call1.body });
    await res.text();
    if (res.status !== 200) return { id: row.id, label: row.label, skipped: `its renewal endpoint answered ${res.status}` };

    let peakRss = 0;
    let cpuAtStart = 0;
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
      sampler = setInterval(() => {
        peakRss = Math.max(peakRss, rssMb(pid));
      }, 250);
    });
    clearInterval(sampler);
    peakRss = Math.max(peakRss, rssMb(pid));
    const cpuUsed = cpuSeconds(pid) - cpuAtStart;
    const measured = /** @type {import('./loadgen.mjs').PhaseResult} */ (result.phases.find((p) => p.name === 'measure'));
    return {
      id: row.id, label: row.label, ok: measured.ok,
      refreshPerSecond: measured.refreshPerSecond, p50: measured.p50, p99: measured.p99,
      errors: measured.errors, reasons: measured.reasons, rssMb: peakRss,
      cpuUsPerRefresh: measured.ok > 0 ? (cpuUsed * 1e6) / measured.ok : undefined,
      generatorCores: measured.generatorCores,
      fillSeconds: target.fillSeconds, warmup: result.phases.find((p) => p.name === 'warmup'),
    };
  } finally {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
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
  const head = ['row', 'refresh/s', 'p50 ms', 'p99 ms', 'errors', 'RSS MB', 'CPU µs/refresh', '× oidc-provider'];
  const lines = results.map((r) => r.skipped
    ? [r.label, `skipped: ${r.skipped}`, '', '', '', '', '', '']
    : [
      r.label, fmt(r.refreshPerSecond), fmt(r.p50, 1), fmt(r.p99, 1), fmt(r.errors), fmt(r.rssMb), fmt(r.cpuUsPerRefresh),
      baseline?.refreshPerSecond && r.refreshPerSecond !== undefined ? `${fmt(r.refreshPerSecond / baseline.refreshPerSecond, 2)}×` : '—',
    ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (/** @type {string[]} */ cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [...(options.header ?? []), row(head), rule, ...lines.map(row)].join('\n');
}

export { existsSync, mkdirSync };
