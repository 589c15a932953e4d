import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real Redis Cluster for tests, from the machine's `redis-server` (Debian's package; .ci/run installs
 * it): 2 × `masters` processes on free loopback ports (each port + 10000, the cluster bus, free too),
 * joined by `redis-cli --cluster create … --cluster-replicas 1`. Every node keeps an AOF (`appendfsync
 * everysec`: Rotor's durability comes from WAIT on a replica, the AOF only bounds what a whole shard
 * losing power at once can lose), `maxmemory-policy noeviction`, and a short `cluster-node-timeout`, so
 * a killed master's replica is promoted within about two seconds. Everything lives in a temporary
 * directory; `stop()` kills every process (also at exit) and removes it.
 */
export interface RedisNode {
  port: number;
  dir: string;
  process: ChildProcess | null;
}

export interface RedisCluster {
  readonly nodes: RedisNode[];
  /** `host:port,host:port…` of every node. */
  readonly seeds: string;
  /** ROTOR_DATABASE_URL for this cluster (`query`: e.g. `minReplicas=1&waitMs=100&prefix=t1`). */
  url(query?: string): string;
  cli(port: number, ...args: string[]): Promise<string>;
  /** The masters as the cluster sees them now: port and how many slots each serves. */
  masters(): Promise<{ port: number; id: string; slots: number }[]>;
  /** The node serving `slot` as master. */
  masterOf(slot: number): Promise<number>;
  kill(port: number, signal?: NodeJS.Signals): Promise<void>;
  /** The port of the replica of the master at `port`. */
  replicaOf(port: number): Promise<number>;
  /** SIGSTOP: the node keeps its sockets open and answers nothing (a frozen VM, a half-open link). */
  pause(port: number): void;
  /** SIGCONT; `stop()` resumes every paused node too. */
  resume(port: number): void;
  /** Starts a killed node again on its own directory (its nodes.conf and AOF): it rejoins as it can. */
  restart(port: number): Promise<void>;
  /** Every slot served, `cluster_state:ok` everywhere, every replica's link to its master up; a timeout says which node was not. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const NODE_TIMEOUT_MS = 1000;
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
});

function run(file: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` ports p with p and p + 10000 free, from a random base below 55535. */
async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const ports: number[] = [];
    for (let p = base; ports.length < count && p < base + count * 4; p += 1) {
      if ((await portFree(p)) && (await portFree(p + 10000))) ports.push(p);
    }
    if (ports.length === count) return ports;
  }
  throw new Error('no free loopback ports for a Redis Cluster');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startNode(node: RedisNode): Promise<void> {
  const child = spawn('redis-server', [
    '--port', String(node.port), '--bind', '127.0.0.1', '--dir', node.dir, '--daemonize', 'no',
    '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction',
    '--logfile', 'redis.log', '--protected-mode', 'no',
  ], { stdio: 'ignore' });
  live.add(child);
  child.once('exit', () => live.delete(child));
  node.process = child;
  return waitFor(async () => (await run('redis-cli', ['-p', String(node.port), 'PING'], 2000).catch(() => '')).trim() === 'PONG', 10_000, `redis-server on ${node.port}`);
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export async function startRedisCluster(options: { masters?: number } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const root = mkdtempSync(join(tmpdir(), 'rotor-redis-'));
  const ports = await freePorts(masters * 2);
  const nodes: RedisNode[] = ports.map((port) => {
    const dir = join(root, String(port));
    mkdirSync(dir);
    return { port, dir, process: null };
  });
  const paused = new Set<RedisNode>();
  const cli = (port: number, ...args: string[]) => run('redis-cli', ['-p', String(port), ...args]);
  const cluster: RedisCluster = {
    nodes,
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    // Tests that are not about WAIT timing wait long for replicas: on a loaded two-core machine 100 ms
    // (the production default) is sometimes too short, and a 503 there would be a flake, not a finding.
    url: (query) => {
      const q = query && /(^|&)waitMs=/.test(query) ? query : [query, 'waitMs=2000'].filter(Boolean).join('&');
      return `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}?${q}`;
    },
    cli,
    async masters() {
      const text = await clusterNodes(nodes);
      return text.split('\n').filter((line) => isLiveMaster(line.trim().split(' ')[2]))
        .map((line) => {
          const parts = line.trim().split(' ');
          const slots = parts.slice(8).reduce((n, range) => {
            if (range.startsWith('[')) return n;
            const [a, b] = range.split('-').map(Number);
            return n + (b === undefined ? 1 : b - a! + 1);
          }, 0);
          return { id: parts[0]!, port: Number(parts[1]!.split(':')[1]!.split('@')[0]), slots };
        });
    },
    async masterOf(slot) {
      const text = await clusterNodes(nodes);
      for (const line of text.split('\n')) {
        const parts = line.trim().split(' ');
        if (!isLiveMaster(parts[2])) continue;
        for (const range of parts.slice(8)) {
          const [a, b] = range.split('-').map(Number);
          if (slot >= a! && slot <= (b ?? a!)) return Number(parts[1]!.split(':')[1]!.split('@')[0]);
        }
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    async kill(port, signal = 'SIGKILL') {
      const node = nodes.find((n) => n.port === port)!;
      const child = node.process;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
      node.process = null;
    },
    async replicaOf(port) {
      const text = await cli(port, 'CLUSTER', 'NODES');
      const id = text.split('\n').find((l) => l.includes('myself'))!.split(' ')[0]!;
      return Number(text.split('\n').find((l) => l.includes(`slave ${id}`))!.split(' ')[1]!.split(':')[1]!.split('@')[0]);
    },
    pause(port) {
      const node = nodes.find((n) => n.port === port)!;
      node.process?.kill('SIGSTOP');
      paused.add(node);
    },
    resume(port) {
      const node = nodes.find((n) => n.port === port)!;
      node.process?.kill('SIGCONT');
      paused.delete(node);
    },
    async restart(port) {
      await startNode(nodes.find((n) => n.port === port)!);
    },
    async waitHealthy(timeoutMs = 60_000) {
      // Why the cluster is not healthy yet, kept for the error: a timeout that says which node and what
      // it reported is a finding; "timed out" alone is a shrug.
      let why = '';
      const healthy = async () => {
        for (const node of nodes) {
          if (!node.process) continue;
          const info = await cli(node.port, 'CLUSTER', 'INFO').catch((e: Error) => e.message);
          if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) {
            why = `${node.port}: ${info.split('\n').filter((l) => /^cluster_(state|slots_)/.test(l)).join(' ') || info}`;
            return false;
          }
          const replication = await cli(node.port, 'INFO', 'replication').catch((e: Error) => e.message);
          const lines = replication.split('\n').filter((l) => /^(role|master_link_status|master_port|connected_slaves|slave\d+):/.test(l)).join(' ');
          if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) {
            why = `${node.port} replica link not up: ${lines}`;
            return false;
          }
          // A master counts its replica only once the replica is online (its initial sync done) and acknowledging.
          if (replication.includes('role:master') && !/slave\d+:.*state=online/.test(replication)) {
            why = `${node.port} master without an online replica: ${lines}`;
            return false;
          }
        }
        return true;
      };
      try {
        await waitFor(healthy, timeoutMs, 'a healthy Redis Cluster');
      } catch (err) {
        const view = await clusterNodes(nodes).catch(() => 'no node answers');
        throw new Error(`${(err as Error).message}: ${why}\n${view}`);
      }
    },
    async stop() {
      for (const node of paused) node.process?.kill('SIGCONT');
      paused.clear();
      await Promise.all(nodes.map((n) => cluster.kill(n.port)));
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(nodes.map(startNode));
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], 60_000);
    await cluster.waitHealthy();
    // Every master has its replica attached before anything is killed.
    await waitFor(async () => (await cluster.masters()).length === masters, 10_000, 'every master');
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

function isLiveMaster(flags: string | undefined): boolean {
  const set = (flags ?? '').split(',');
  return set.includes('master') && !set.includes('fail') && !set.includes('fail?');
}

async function clusterNodes(nodes: RedisNode[]): Promise<string> {
  for (const node of nodes) {
    if (!node.process) continue;
    const text = await run('redis-cli', ['-p', String(node.port), 'CLUSTER', 'NODES'], 5000).catch(() => '');
    if (text.trim()) return text;
  }
  throw new Error('no Redis node answers');
}
