#!/usr/bin/env node
// Rotor on Redis Cluster: refreshes per second with 1, 2 and 3 masters (a replica each, minReplicas=1,
// waitMs=100), the same load each time. Usage (after `npm run build`):
//   node bench/targets/redis.mjs [--masters 1,2,3] [--seconds 8] [--connections 64] [--sessions 512] [--workers 1]
// Each run starts its own cluster from redis-server on free loopback ports (AOF everysec, noeviction,
// as docs/production.md asks), one `rotor serve` on it, issues the sessions, then refreshes every
// session's chain as fast as `connections` concurrent clients can for `seconds`, and prints one JSON
// line per master count: { masters, refreshPerSecond, p50Ms, p99Ms, errors }.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const MASTER_COUNTS = String(args.masters ?? '1,2,3').split(',').map(Number);
const SECONDS = Number(args.seconds ?? 8);
const CONNECTIONS = Number(args.connections ?? 64);
const SESSIONS = Number(args.sessions ?? 512);
const WORKERS = String(args.workers ?? 1);
const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = (file, argv) => new Promise((resolve, reject) => execFile(file, argv, { timeout: 60_000 }, (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out))));
const cli = (port, ...argv) => run('redis-cli', ['-p', String(port), ...argv]);
const portFree = (port) => new Promise((resolve) => {
  const s = createServer();
  s.once('error', () => resolve(false));
  s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

async function freePorts(count) {
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const ports = [];
    for (let p = base; ports.length < count && p < base + count * 4; p += 1) if ((await portFree(p)) && (await portFree(p + 10000))) ports.push(p);
    if (ports.length === count) return ports;
  }
}

async function until(check, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

/** `masters` masters with a replica each; slots split evenly (redis-cli --cluster create needs three masters, so this joins them by hand). */
async function startCluster(masters) {
  const root = mkdtempSync(join(tmpdir(), 'rotor-bench-redis-'));
  const ports = await freePorts(masters * 2);
  for (const port of ports) {
    const dir = join(root, String(port));
    mkdirSync(dir);
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--appendonly', 'yes', '--appendfsync', 'everysec',
      '--save', '', '--maxmemory-policy', 'noeviction', '--logfile', 'redis.log'], { stdio: 'ignore' });
    children.add(child);
    await until(async () => (await cli(port, 'PING')).trim() === 'PONG', `redis-server ${port}`);
  }
  const ids = await Promise.all(ports.map(async (p) => (await cli(p, 'CLUSTER', 'MYID')).trim()));
  const per = Math.ceil(16384 / masters);
  for (let m = 0; m < masters; m += 1) await cli(ports[m], 'CLUSTER', 'ADDSLOTSRANGE', String(m * per), String(Math.min(16383, (m + 1) * per - 1)));
  for (const p of ports.slice(1)) await cli(p, 'CLUSTER', 'MEET', '127.0.0.1', String(ports[0]));
  await until(async () => (await Promise.all(ports.map((p) => cli(p, 'CLUSTER', 'NODES')))).every((t) => t.trim().split('\n').length === ports.length && !t.includes('handshake')), 'the nodes to meet');
  for (let r = 0; r < masters; r += 1) await cli(ports[masters + r], 'CLUSTER', 'REPLICATE', ids[r]);
  await until(async () => {
    for (const p of ports) {
      if (!(await cli(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
      const repl = await cli(p, 'INFO', 'replication');
      if (repl.includes('role:master') && !/slave0:.*state=online/.test(repl)) return false;
      if (repl.includes('role:slave') && !repl.includes('master_link_status:up')) return false;
    }
    return true;
  }, 'a healthy cluster');
  return { seeds: ports.map((p) => `127.0.0.1:${p}`).join(','), stop: () => { for (const c of children) c.kill('SIGKILL'); children.clear(); rmSync(root, { recursive: true, force: true }); } };
}

async function startRotor(url) {
  const port = (await freePorts(1))[0];
  const child = spawn(process.execPath, [MAIN, 'serve'], {
    env: { PATH: process.env.PATH, ROTOR_DATABASE_URL: url, ROTOR_MASTER_KEY: randomBytes(32).toString('base64'), ROTOR_PORT: String(port),
      ROTOR_ADMIN_TOKEN: 'bench-admin-token-0123456789', ROTOR_RATE_LIMITS: 'off', ROTOR_LOG_LEVEL: 'warn', ROTOR_WORKERS: WORKERS },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  const base = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${base}/readyz`)).ok, 'rotor serve');
  return base;
}

async function measure(masters) {
  const cluster = await startCluster(masters);
  try {
    const url = await startRotor(`redis+cluster://${cluster.seeds}?minReplicas=1&waitMs=100`);
    const post = async (path, body, headers = {}) => {
      const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      return { status: res.status, body: await res.json().catch(() => null) };
    };
    const app = (await post('/admin/apps', { name: 'bench', public: true }, { authorization: 'Bearer bench-admin-token-0123456789' })).body;
    const tokens = [];
    for (let i = 0; i < SESSIONS; i += 32) {
      const batch = await Promise.all(Array.from({ length: Math.min(32, SESSIONS - i) }, (_, k) =>
        post(`/v1/apps/${app.name}/sessions`, { subject: `user-${i + k}` }, { authorization: `Bearer ${app.appKey}` })));
      tokens.push(...batch.map((r) => r.body.refreshToken));
    }
    const latencies = [];
    let errors = 0;
    let measuring = false;
    let done = false;
    const loops = Array.from({ length: CONNECTIONS }, async (_, c) => {
      for (let n = c; !done; n += CONNECTIONS) {
        const slot = n % tokens.length;
        const started = performance.now();
        const res = await post('/v1/refresh', { refreshToken: tokens[slot] });
        if (res.status === 200) {
          tokens[slot] = res.body.refreshToken;
          if (measuring) latencies.push(performance.now() - started);
        } else if (measuring) {
          errors += 1;
        }
      }
    });
    await sleep(1500); // warm-up: connections, script caches, JIT
    measuring = true;
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    measuring = false;
    const elapsed = (performance.now() - t0) / 1000;
    done = true;
    await Promise.all(loops);
    latencies.sort((x, y) => x - y);
    const pct = (p) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] * 10) / 10;
    return { masters, refreshPerSecond: Math.round(latencies.length / elapsed), p50Ms: pct(0.5), p99Ms: pct(0.99), errors, connections: CONNECTIONS, sessions: SESSIONS, rotorWorkers: Number(WORKERS) };
  } finally {
    cluster.stop();
  }
}

for (const masters of MASTER_COUNTS) console.log(JSON.stringify(await measure(masters)));
process.exit(0);
