// @ts-check
/**
 * `npm run bench`: every row of rows.mjs, one at a time, then one table.
 *
 *   BENCH_DURATION=10     measured seconds per row (default 10)
 *   BENCH_WARMUP=3        warm-up seconds per row, on other sessions (default 3)
 *   BENCH_CONNECTIONS=64  connections (default 64)
 *   BENCH_RUNS=1          rounds over all rows; each row shows its run with the median refresh/s
 *   BENCH_QUICK=1         smoke mode: 2 s runs, 1 s warm-up
 *   BENCH_ROWS=a,b        only these row ids (see bench/rows.mjs)
 *   BENCH_PROFILE=dir     start each server under `node --cpu-prof`, profiles into dir/<row>/
 *   BENCH_LOGS=dir        keep each server's output in dir/<row>.log
 *   BENCH_JSON=file       also write every figure as JSON
 *   BENCH_DISK=0|only     rows marked `disk` also measure bytes on disk per session after 100 rotations
 *                         (on a server of their own, in the first round): 0 skips that, only does only that
 *   BENCH_DISK_SESSIONS   sessions in that measurement (default 1000)
 *   BENCH_REDIS=0         skip the Redis Cluster row (bench/targets/redis.mjs); BENCH_REDIS_MASTERS=1,2,3
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { environment, formatTable, runRow } from './harness.mjs';
import { ROWS } from './rows.mjs';

const env = process.env;
const quick = env.BENCH_QUICK === '1';
const options = {
  durationSeconds: Number(env.BENCH_DURATION ?? (quick ? 2 : 10)),
  warmupSeconds: Number(env.BENCH_WARMUP ?? (quick ? 1 : 3)),
  connections: Number(env.BENCH_CONNECTIONS ?? 64),
  profileDir: env.BENCH_PROFILE || undefined,
  logDir: env.BENCH_LOGS || undefined,
  disk: /** @type {'yes' | 'no' | 'only'} */ (env.BENCH_DISK === '0' || env.BENCH_DISK === 'no' ? 'no' : env.BENCH_DISK === 'only' ? 'only' : 'yes'),
  diskSessions: Number(env.BENCH_DISK_SESSIONS ?? 1000),
};
const runs = Math.max(1, Number(env.BENCH_RUNS ?? 1));
const only = env.BENCH_ROWS ? new Set(env.BENCH_ROWS.split(',').map((s) => s.trim())) : null;
const rows = ROWS.filter((r) => (!only || only.has(r.id)) && (env.BENCH_DISK !== 'only' || r.disk));
if (options.logDir) mkdirSync(options.logDir, { recursive: true });

/** @param {import('./harness.mjs').DiskResult} d */
function describeDisk(d) {
  const tables = Object.entries(d.tables).map(([k, v]) => `${k} ${Math.round(v / d.sessions)}`).join(', ');
  return `${Math.round(d.bytesPerSession)} B/session on disk after ${d.rotations} rotations (${Math.round(d.bytesPerSessionAfterFirst)} after the first; ${d.refreshRowsPerSession} refresh_tokens rows per session; by relation: ${tables}; ${d.sessions} sessions, ${d.seconds.toFixed(0)} s)`;
}

const about = environment();
const header = [
  `machine: ${about.machine}; Node ${about.node}`,
  `versions: ${Object.entries(about.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`,
  `${options.connections} connections, each chaining its own refresh tokens; ${options.durationSeconds} s measured after ${options.warmupSeconds} s warm-up; ${runs === 1 ? 'one run' : `median of ${runs} runs`} per row`,
  '',
];
process.stderr.write(`${header.join('\n')}\n`);

// Rounds, not rows, outermost: with BENCH_RUNS > 1 every row gets one run per round, so a change in
// the machine's background load (a shared VM) falls on all rows alike instead of on the last ones.
/** @type {Map<string, import('./harness.mjs').RowResult[]>} */
const attempts = new Map(rows.map((r) => [r.id, []]));
/** @type {Set<string>} rows that cannot run (skipped or failed): not retried */
const out = new Set();
for (let i = 0; i < runs; i += 1) {
  if (i > 0 && options.disk === 'only') break;
  for (const row of rows) {
    if (out.has(row.id)) continue;
    const mine = /** @type {import('./harness.mjs').RowResult[]} */ (attempts.get(row.id));
    process.stderr.write(`▸ ${row.id}${runs > 1 ? ` (run ${i + 1}/${runs})` : ''} … `);
    try {
      // The disk figure does not vary by round: measured in the first only.
      const result = await runRow(row, i === 0 ? options : { ...options, disk: 'no' });
      mine.push(result);
      process.stderr.write(result.skipped
        ? `skipped: ${result.skipped}\n`
        : `${result.refreshPerSecond === undefined ? '' : `${Math.round(result.refreshPerSecond)}/s, p50 ${result.p50} ms, p99 ${result.p99} ms, server CPU ${Math.round(result.cpuUsPerRefresh ?? 0)} µs/refresh (main thread ${Math.round(result.mainThreadCpuUsPerRefresh ?? 0)}${result.otherThreadsUsPerRefresh?.length ? `, other threads ${result.otherThreadsUsPerRefresh.join(' + ')}` : ''})${result.storeCpuUsPerRefresh === undefined ? '' : `, PostgreSQL backends ${Math.round(result.storeCpuUsPerRefresh)} µs/refresh`}, RSS ${Math.round(result.rssMb ?? 0)} MB, generator ${(result.generatorCores ?? 0).toFixed(2)} cores${result.dpopProofs === undefined ? '' : `, replay cache ${result.dpopProofs} proofs, ${result.proofsSignedLive ?? 0} signed during the run`}, errors ${result.errors}${result.errors ? ` ${JSON.stringify(result.reasons)}` : ''}`}${result.fillSeconds ? `, fill ${result.fillSeconds.toFixed(1)} s` : ''}${result.disk ? `${result.refreshPerSecond === undefined ? '' : '; '}${describeDisk(result.disk)}` : ''}\n`);
      if (result.skipped) out.add(row.id);
    } catch (err) {
      process.stderr.write(`failed: ${/** @type {Error} */ (err).message}\n`);
      mine.push({ id: row.id, label: row.label, skipped: `failed: ${/** @type {Error} */ (err).message.slice(0, 120)}` });
      out.add(row.id);
    }
  }
}
/** @type {import('./harness.mjs').RowResult[]} */
const results = rows.map((row) => {
  const mine = /** @type {import('./harness.mjs').RowResult[]} */ (attempts.get(row.id));
  const measured = mine.filter((a) => !a.skipped).sort((a, b) => (a.refreshPerSecond ?? 0) - (b.refreshPerSecond ?? 0));
  const median = measured[Math.floor((measured.length - 1) / 2)] ?? /** @type {import('./harness.mjs').RowResult} */ (mine[0]);
  const disk = mine.find((a) => a.disk)?.disk;
  return disk && !median.disk ? { ...median, disk } : median;
});

const CORES = availableParallelism();
const baselineId = rows.find((r) => r.baseline)?.id;
process.stdout.write(`\n${formatTable(results, { baselineId, header })}\n`);
// A row with `comparesTo` (the DPoP row against the bearer refresh it adds a proof to) is reported as a
// share of that row's refresh/s and beside its CPU per refresh, from the same round's median runs.
for (const row of rows.filter((r) => r.comparesTo)) {
  const mine = results.find((r) => r.id === row.id);
  const base = results.find((r) => r.id === row.comparesTo);
  if (!mine?.refreshPerSecond || !base?.refreshPerSecond) continue;
  process.stdout.write(`\n${row.id} vs ${base.id}: ${Math.round(mine.refreshPerSecond).toLocaleString('en-US')} vs ${Math.round(base.refreshPerSecond).toLocaleString('en-US')} refresh/s`
    + ` = ${Math.round((100 * mine.refreshPerSecond) / base.refreshPerSecond)}%; p99 ${mine.p99} vs ${base.p99} ms;`
    + ` server CPU ${Math.round(mine.cpuUsPerRefresh ?? 0)} vs ${Math.round(base.cpuUsPerRefresh ?? 0)} µs/refresh (main thread ${Math.round(mine.mainThreadCpuUsPerRefresh ?? 0)} vs ${Math.round(base.mainThreadCpuUsPerRefresh ?? 0)});`
    + ` load generator ${(mine.generatorCores ?? 0).toFixed(2)} vs ${(base.generatorCores ?? 0).toFixed(2)} cores\n`);
  // What the machine could give the row at best: its cores divided by all the CPU one refresh of it costs
  // here (server, database backends, load generator). A ratio the ceiling itself keeps under a goal is the
  // hardware's, not the server's.
  const ceiling = cpuCeiling(mine);
  if (ceiling !== null) {
    process.stdout.write(`  CPU ceiling on ${CORES} cores: ${Math.round(ceiling).toLocaleString('en-US')} refresh/s = ${Math.round((100 * ceiling) / base.refreshPerSecond)}% of ${base.id}`
      + ` (${Math.round((CORES * 1e6) / ceiling)} µs of CPU per refresh)\n`);
  }
  // Every round's pair (the two rows run back to back in it), not only the medians.
  const pairs = (attempts.get(row.id) ?? []).map((a, i) => [a, attempts.get(base.id)?.[i]]).filter(([a, b]) => a?.refreshPerSecond && b?.refreshPerSecond);
  if (pairs.length > 1) {
    process.stdout.write(`  by round: ${pairs.map(([a, b]) => `${Math.round(a?.refreshPerSecond ?? 0)} vs ${Math.round(b?.refreshPerSecond ?? 0)} (${Math.round((100 * (a?.refreshPerSecond ?? 0)) / (b?.refreshPerSecond ?? 1))}%)`).join(', ')}\n`);
  }
}
/**
 * @param {import('./harness.mjs').RowResult} row
 * @returns {number | null} refresh/s if every core did nothing but this row's refreshes
 */
function cpuCeiling(row) {
  if (!row.refreshPerSecond || row.cpuUsPerRefresh === undefined || row.generatorCores === undefined) return null;
  const generatorUs = (row.generatorCores * 1e6) / row.refreshPerSecond;
  return (CORES * 1e6) / (row.cpuUsPerRefresh + (row.storeCpuUsPerRefresh ?? 0) + generatorUs);
}

const disks = results.filter((r) => r.disk);
if (disks.length > 0) {
  process.stdout.write(`\ndisk B/session: ${disks.map((r) => `${r.id}: ${describeDisk(/** @type {import('./harness.mjs').DiskResult} */ (r.disk))}`).join('\n                ')}\n`);
}
// The Redis Cluster row (issue 13): its own script starts a three-master cluster from redis-server and a
// Rotor on it (BENCH_REDIS=0 skips it; BENCH_REDIS_MASTERS=1,2,3 measures each count).
/** @type {Record<string, unknown>[]} */
const redis = [];
if (env.BENCH_REDIS !== '0' && (!only || only.has('redis'))) {
  const masters = env.BENCH_REDIS_MASTERS ?? '3';
  process.stderr.write(`▸ redis (masters ${masters}) … `);
  try {
    const out = execFileSync(process.execPath, [join(import.meta.dirname, 'targets', 'redis.mjs'), '--masters', masters, '--seconds', String(options.durationSeconds)], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000,
    });
    for (const line of out.split('\n').filter((l) => l.startsWith('{'))) redis.push(JSON.parse(line));
    process.stderr.write(`${redis.map((r) => `${r.masters} masters: ${r.refreshPerSecond}/s, p99 ${r.p99Ms} ms, errors ${r.errors}`).join('; ')}\n`);
    process.stdout.write(`\nRotor native, Redis Cluster (one replica per master, WAIT 1): ${redis.map((r) => `${r.masters} masters ${r.refreshPerSecond} refresh/s (p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, errors ${r.errors})`).join('; ')}\n`);
  } catch (err) {
    process.stderr.write(`skipped: ${/** @type {Error} */ (err).message.split('\n')[0]}\n`);
  }
}
if (env.BENCH_JSON) writeFileSync(env.BENCH_JSON, JSON.stringify({ about, options, runs, results, redis, all: Object.fromEntries(attempts) }, null, 2));
