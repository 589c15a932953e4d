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
 */
import { mkdirSync, writeFileSync } from 'node:fs';
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
};
const runs = Math.max(1, Number(env.BENCH_RUNS ?? 1));
const only = env.BENCH_ROWS ? new Set(env.BENCH_ROWS.split(',').map((s) => s.trim())) : null;
const rows = ROWS.filter((r) => !only || only.has(r.id));
if (options.logDir) mkdirSync(options.logDir, { recursive: true });

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
  for (const row of rows) {
    if (out.has(row.id)) continue;
    const mine = /** @type {import('./harness.mjs').RowResult[]} */ (attempts.get(row.id));
    process.stderr.write(`▸ ${row.id}${runs > 1 ? ` (run ${i + 1}/${runs})` : ''} … `);
    try {
      const result = await runRow(row, options);
      mine.push(result);
      process.stderr.write(result.skipped
        ? `skipped: ${result.skipped}\n`
        : `${Math.round(result.refreshPerSecond ?? 0)}/s, p50 ${result.p50} ms, p99 ${result.p99} ms, server CPU ${Math.round(result.cpuUsPerRefresh ?? 0)} µs/refresh, RSS ${Math.round(result.rssMb ?? 0)} MB, generator ${(result.generatorCores ?? 0).toFixed(2)} cores, errors ${result.errors}${result.errors ? ` ${JSON.stringify(result.reasons)}` : ''}\n`);
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
  return measured[Math.floor((measured.length - 1) / 2)] ?? /** @type {import('./harness.mjs').RowResult} */ (mine[0]);
});

const baselineId = rows.find((r) => r.baseline)?.id;
process.stdout.write(`\n${formatTable(results, { baselineId, header })}\n`);
if (env.BENCH_JSON) writeFileSync(env.BENCH_JSON, JSON.stringify({ about, options, runs, results, all: Object.fromEntries(attempts) }, null, 2));
