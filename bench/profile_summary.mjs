// @ts-check
/**
 * Summarises `.cpuprofile` files written by `node --cpu-prof` (BENCH_PROFILE=dir npm run bench):
 * self time by function and by package/file, as shares of all samples.
 *
 *   node bench/profile_summary.mjs <file-or-dir> [top]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const [target = '.', topText = '30'] = process.argv.slice(2);
const top = Number(topText);
const files = statSync(target).isDirectory()
  ? readdirSync(target).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(target, f))
  : [target];

/** @type {Map<string, number>} */
const byFunction = new Map();
/** @type {Map<string, number>} */
const byPlace = new Map();
let total = 0;

/** @param {string} url */
function place(url) {
  if (!url) return '(native / V8)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (path.startsWith('node:')) return path;
  return relative(process.cwd(), path);
}

/** Per file (one per thread: the main thread and e.g. the SQLite checkpointer worker): busy µs. */
/** @type {[string, number][]} */
const perFile = [];
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const before = total;
  /** @type {Map<number, any>} */
  const nodes = new Map(profile.nodes.map((/** @type {any} */ n) => [n.id, n]));
  const deltas = profile.timeDeltas;
  /** @type {Map<number, number>} */
  const selfTime = new Map();
  profile.samples.forEach((/** @type {number} */ id, /** @type {number} */ i) => {
    selfTime.set(id, (selfTime.get(id) ?? 0) + (deltas[i] ?? 0));
  });
  for (const [id, us] of selfTime) {
    const frame = nodes.get(id).callFrame;
    if (frame.functionName === '(idle)') continue;
    total += us;
    const where = place(frame.url);
    const fn = `${frame.functionName || '(anonymous)'} ${where}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byPlace.set(where, (byPlace.get(where) ?? 0) + us);
  }
  perFile.push([file, total - before]);
}

const show = (/** @type {string} */ title, /** @type {Map<string, number>} */ map) => {
  process.stdout.write(`\n${title}\n`);
  for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${name}\n`);
  }
};
process.stdout.write(`${files.length} profile(s), ${(total / 1e6).toFixed(2)} s of busy samples\n`);
for (const [file, us] of perFile) process.stdout.write(`  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${file}\n`);
show('self time by package / file', byPlace);
show('self time by function', byFunction);
