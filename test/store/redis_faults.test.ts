import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/store/redis/keys.js';
import { slotOf } from '../../src/store/redis/router.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis_cluster.js';
import { buildRotor, http, startRotor, type HttpResult, type RotorProcess } from '../helpers/rotor_process.js';

/**
 * Two real Rotor processes on one real six-node Redis Cluster (three masters, a replica each):
 * every renewal invariant across processes, and what a SIGKILLed master or a slot migration under load
 * may and may not do (SPEC §7): no answered rotation lost, no valid token refused as reuse, and while
 * a slot has no master only 503 with Retry-After.
 */
const ADMIN_TOKEN = 'redis-faults-admin-token-01234';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const PREFIX = 'rf';

let cluster: RedisCluster;
let build: Awaited<ReturnType<typeof buildRotor>>;
let a: RotorProcess;
let b: RotorProcess;

beforeAll(async () => {
  [cluster, build] = await Promise.all([startRedisCluster(), buildRotor()]);
  const env = {
    ROTOR_DATABASE_URL: cluster.url(`prefix=${PREFIX}&minReplicas=1&waitMs=100`), ROTOR_MASTER_KEY: randomBytes(32).toString('base64'),
    ROTOR_ADMIN_TOKEN: ADMIN_TOKEN, ROTOR_ISSUER: 'http://rotor.redis.test', ROTOR_RATE_LIMITS: 'off', ROTOR_LOG_LEVEL: 'warn',
  };
  // Both start at once: the migration is one script, applied once.
  [a, b] = await Promise.all([startRotor(build.main, env), startRotor(build.main, env)]);
}, 90_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await cluster?.stop();
  build?.dispose();
});

async function createApp(name: string, policy: Record<string, unknown> = {}) {
  const res = await http(a.url, 'POST', '/admin/apps', { json: { name, policy, public: true }, headers: admin });
  if (res.status !== 201) throw new Error(`createApp: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string; name: string; appKey: string };
}

async function issue(url: string, app: { name: string; appKey: string }, subject = 'alice') {
  const res = await http(url, 'POST', `/v1/apps/${app.name}/sessions`, { json: { subject }, headers: { authorization: `Bearer ${app.appKey}` } });
  if (res.status !== 201) throw new Error(`issue: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { refreshToken: string; sessionId: string };
}

const refresh = (url: string, refreshToken: string) => http(url, 'POST', '/v1/refresh', { json: { refreshToken } });
const race = (token: string, n = 50) => Promise.all(Array.from({ length: n }, (_, i) => refresh(i % 2 ? b.url : a.url, token)));

/** Every key of this deployment, by master port. */
async function keysByMaster(pattern = `${PREFIX}:*`): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const { port } of await cluster.masters()) {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, ...found] = (await cluster.cli(port, '--no-raw', 'SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000')).trim().split('\n');
      cursor = next!.replace(/^1\) "|"$/g, '');
      keys.push(...found.flatMap((line) => line.match(/"(.*)"$/)?.[1] ?? []));
    } while (cursor !== '0');
    out.set(port, keys);
  }
  return out;
}

describe('two Rotor processes on one Redis Cluster', () => {
  it('50 concurrent refreshes of one token across both, with grace: all 200, one successor', async () => {
    const app = await createApp('rc-grace');
    const { refreshToken } = await issue(b.url, app);
    const results = await race(refreshToken);
    expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
    const successors = new Set(results.map((r) => r.body.refreshToken));
    expect(successors.size).toBe(1);
    expect((await refresh(b.url, [...successors][0]!)).status).toBe(200);
  });

  it('50 concurrent refreshes across both, without grace: exactly one wins, never a 5xx', async () => {
    const app = await createApp('rc-strict', { reuseGrace: 0 });
    const { refreshToken } = await issue(a.url, app);
    const results = await race(refreshToken);
    expect(results.filter((r) => r.status >= 500)).toEqual([]);
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) expect(r.status).toBe(400);
  });

  it('reuse detected on one instance revokes the session on the other at once', async () => {
    const app = await createApp('rc-reuse', { reuseGrace: 0 });
    const first = await issue(a.url, app);
    const renewed = await refresh(a.url, first.refreshToken);
    expect(renewed.status).toBe(200);
    expect((await refresh(b.url, first.refreshToken)).status).toBe(400);
    expect((await refresh(a.url, renewed.body.refreshToken)).status).toBe(400);
  });

  it('sessions land on every master; 500 rotations of a session add no key and no field', async () => {
    const app = await createApp('rc-spread');
    const sessions = await Promise.all(Array.from({ length: 30 }, (_, i) => issue(i % 2 ? a.url : b.url, app, `user-${i}`)));
    const byMaster = await keysByMaster(`${PREFIX}:{${PREFIX}:*}:*:s:*`);
    expect(byMaster.size).toBe(3);
    for (const [port, keys] of byMaster) expect(keys.length, `sessions on the master at ${port}`).toBeGreaterThan(0);

    let token = sessions[0]!.refreshToken;
    await refresh(a.url, token).then((r) => { token = r.body.refreshToken; });
    const count = async () => [...(await keysByMaster()).values()].flat().filter((k) => !/:\{rf:(act|ev)\}:/.test(k)).sort();
    const before = await count();
    const sessionKey = before.find((k) => k.endsWith(`:s:${sessions[0]!.sessionId}`))!;
    const port = await cluster.masterOf(slotOf(sessionKey));
    const fields = async () => Number((await cluster.cli(port, 'HLEN', sessionKey)).trim());
    const fieldsBefore = await fields();
    for (let i = 0; i < 500; i += 1) {
      const res = await refresh(i % 2 ? a.url : b.url, token);
      expect(res.status).toBe(200);
      token = res.body.refreshToken;
    }
    expect(await count()).toEqual(before);
    expect(await fields()).toBeLessThanOrEqual(fieldsBefore + 1);
  }, 60_000);
});

/**
 * Chains refreshing as fast as they can over both instances, each remembering the last token it was
 * answered; a 503 is retried with the same token, anything but 200 and 503 is recorded as a failure.
 */
function load(chains: { token: string }[], urls: string[]) {
  const failures: string[] = [];
  const unavailable: { at: number; retryAfter: string | null }[] = [];
  let ok = 0;
  let running = true;
  const loops = chains.map(async (chain, i) => {
    let n = i;
    while (running) {
      n += 1;
      let res: HttpResult;
      try {
        res = await refresh(urls[n % urls.length]!, chain.token);
      } catch (err) {
        failures.push(`fetch: ${(err as Error).message}`);
        continue;
      }
      if (res.status === 200) {
        chain.token = res.body.refreshToken;
        ok += 1;
      } else if (res.status === 503) {
        unavailable.push({ at: Date.now(), retryAfter: res.headers.get('retry-after') });
        await new Promise((r) => setTimeout(r, 50));
      } else {
        failures.push(`${res.status} ${JSON.stringify(res.body)}`);
        running = false;
      }
    }
  });
  return {
    failures, unavailable, get ok() { return ok; },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe('faults under load', () => {
  it('a master killed with SIGKILL under load: its replica takes over, no answered rotation is lost, no valid token is refused', async () => {
    const app = await createApp('rc-failover');
    const chains = await Promise.all(Array.from({ length: 24 }, async (_, i) => ({ token: (await issue(a.url, app, `chain-${i}`)).refreshToken })));
    const masters = await cluster.masters();
    const victim = masters[0]!;
    const running = load(chains, [a.url, b.url]);
    await new Promise((r) => setTimeout(r, 1000));
    const okBeforeKill = running.ok;
    const killedAt = Date.now();
    await cluster.kill(victim.port);
    // The replica is promoted after cluster-node-timeout; requests meanwhile get 503.
    let promotedAt = 0;
    while (!promotedAt) {
      const now = await cluster.masters().catch(() => []);
      if (now.length === 3 && !now.some((m) => m.port === victim.port)) promotedAt = Date.now();
      else await new Promise((r) => setTimeout(r, 50));
      if (Date.now() - killedAt > 20_000) throw new Error('no replica was promoted');
    }
    // With minReplicas=1 the promoted master's shard answers 503 until it has a replica again: restart the killed node.
    await cluster.restart(victim.port);
    await cluster.waitHealthy();
    const healedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    await running.stop();
    console.log(JSON.stringify({
      failover: { promotedMs: promotedAt - killedAt, healedMs: healedAt - killedAt }, answered: running.ok, beforeKill: okBeforeKill,
      unavailable: running.unavailable.length, lastUnavailableMs: running.unavailable.length ? Math.max(...running.unavailable.map((u) => u.at)) - killedAt : null,
    }));
    expect(running.failures).toEqual([]);
    expect(running.unavailable.every((u) => u.retryAfter !== null)).toBe(true);
    expect(running.ok).toBeGreaterThan(okBeforeKill);
    // Every chain's last answered token still refreshes: nothing answered was lost.
    for (const chain of chains) expect((await refresh(b.url, chain.token)).status).toBe(200);
  }, 150_000);

  it('a slot migration (redis-cli --cluster reshard) under load loses nothing and refuses nothing', async () => {
    const app = await createApp('rc-reshard');
    const chains = await Promise.all(Array.from({ length: 24 }, async (_, i) => ({ token: (await issue(b.url, app, `mover-${i}`)).refreshToken })));
    const [from, to] = await cluster.masters();
    const running = load(chains, [a.url, b.url]);
    await new Promise((r) => setTimeout(r, 500));
    await cluster.cli(to!.port, '--cluster', 'reshard', `127.0.0.1:${to!.port}`, '--cluster-from', from!.id, '--cluster-to', to!.id,
      '--cluster-slots', '2000', '--cluster-yes', '--cluster-pipeline', '50');
    await new Promise((r) => setTimeout(r, 500));
    await running.stop();
    const moved = await cluster.masters();
    expect(moved.find((m) => m.id === to!.id)!.slots).toBe(to!.slots + 2000);
    console.log(JSON.stringify({ reshard: { answered: running.ok, unavailable: running.unavailable.length } }));
    expect(running.failures).toEqual([]);
    for (const chain of chains) expect((await refresh(a.url, chain.token)).status).toBe(200);
  }, 90_000);

  it('a master stopped with SIGSTOP: requests answer 503 with Retry-After within the bound (never hang, never reuse), /readyz 503; service resumes after the failover', async () => {
    const app = await createApp('rc-stopped', { reuseGrace: 0 });
    const pair = await issue(a.url, app, 'sleeper');
    let token = pair.refreshToken;
    const first = await refresh(a.url, token);
    expect(first.status).toBe(200);
    token = first.body.refreshToken;
    const master = await cluster.masterOf(slotOf(`${new RedisKeys(PREFIX).subject(app.id, 'sleeper')}u`));
    const timings: number[] = [];
    const statuses: number[] = [];
    const timed = async (url: string) => {
      const started = Date.now();
      const res = await refresh(url, token);
      timings.push(Date.now() - started);
      statuses.push(res.status);
      if (res.status === 200) token = res.body.refreshToken;
      else expect(res.headers.get('retry-after')).not.toBeNull();
      return res;
    };
    cluster.pause(master);
    try {
      const readyStarted = Date.now();
      const [res, ready] = await Promise.all([timed(b.url), http(a.url, 'GET', '/readyz').then((r) => ({ status: r.status, ms: Date.now() - readyStarted }))]);
      expect(res.status).toBe(503);
      expect(ready.status).toBe(503);
      // Its replica is promoted after cluster-node-timeout; until then, and until the promoted master has
      // a replica again (minReplicas=1), only 503, each within the bound.
      const until = Date.now() + 5000;
      while (Date.now() < until) await timed(statuses.length % 2 ? a.url : b.url);
      console.log(JSON.stringify({ sigstop: { firstAnswerMs: timings[0], readyzMs: ready.ms, slowestMs: Math.max(...timings), answers: statuses.length } }));
    } finally {
      cluster.resume(master);
    }
    await cluster.waitHealthy();
    let again = await timed(a.url);
    for (let i = 0; i < 100 && again.status === 503; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      again = await timed(i % 2 ? a.url : b.url);
    }
    expect(again.status).toBe(200);
    expect(statuses.filter((st) => st !== 200 && st !== 503)).toEqual([]);
    expect(Math.max(...timings)).toBeLessThan(4500);
    expect((await refresh(b.url, token)).status).toBe(200);
    expect((await http(b.url, 'GET', '/readyz')).status).toBe(200);
  }, 150_000);

  it('a cluster with slots and no master answers 503 with Retry-After, /readyz 503; it recovers by itself', async () => {
    const app = await createApp('rc-down');
    const pair = await issue(a.url, app, 'downer');
    const masters = await cluster.masters();
    const shard = masters[masters.length - 1]!;
    const nodes = await cluster.cli(shard.port, 'CLUSTER', 'NODES');
    const replicaPort = Number(nodes.split('\n').find((l) => l.includes(`slave ${shard.id}`))!.split(' ')[1]!.split(':')[1]!.split('@')[0]);
    await Promise.all([cluster.kill(shard.port), cluster.kill(replicaPort)]);
    // Once the others mark the shard failed, cluster_state is fail: every command is refused.
    const deadline = Date.now() + 15_000;
    let token = pair.refreshToken;
    let res = await refresh(b.url, token);
    while (res.status !== 503 && Date.now() < deadline) {
      if (res.status === 200) token = res.body.refreshToken;
      res = await refresh(b.url, token);
    }
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).not.toBeNull();
    expect((await http(a.url, 'GET', '/readyz')).status).toBe(503);
    await Promise.all([cluster.restart(shard.port), cluster.restart(replicaPort)]);
    await cluster.waitHealthy();
    let again = await refresh(b.url, token);
    for (let i = 0; i < 50 && again.status === 503; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      again = await refresh(b.url, token);
    }
    expect(again.status).toBe(200);
    expect((await http(a.url, 'GET', '/readyz')).status).toBe(200);
  }, 150_000);
});

describe('a URL that names no reachable node', () => {
  it('is one clear line at start', async () => {
    const err = await startRotor(build.main, {
      ROTOR_DATABASE_URL: 'redis+cluster://127.0.0.1:1,127.0.0.1:2', ROTOR_MASTER_KEY: randomBytes(32).toString('base64'),
    }).then(() => null, (e: Error) => e.message);
    expect(err).toMatch(/names no reachable Redis Cluster node/);
    const lines = err!.split('\n').filter((l) => l.startsWith('rotor:'));
    expect(lines).toHaveLength(1);
  }, 30_000);
});

