// The house rules of issue 16, checked from the source text: imports run only from a higher room to a
// lower one (or within a room), and no source file is over 350 lines. The rooms, lowest first:
//   crypto  — primitives, no knowledge of sessions
//   domain  — sessions, rotation, policy, errors, the store port; knows no HTTP, SQL or dialect
//   config  — environment parsing; may use domain types
//   store, http — adapters on either side of the domain; peers that never import each other
//   dialects — one folder per dialect: format, routes, envelope, policy fields, rate-limit classes
//   app     — composition: cli, runtime, serve, library, index
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');
const RANK: Record<string, number> = { crypto: 0, domain: 1, config: 2, store: 3, http: 3, dialects: 4, app: 5 };
const MAX_LINES = 350;

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : walk(path);
    return /\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

function roomOf(file: string): string {
  const [first, second] = relative(SRC, file).split('/');
  if (second === undefined) return first === 'config.ts' ? 'config' : 'app';
  if (first === 'cli') return 'app';
  if (!(first in RANK)) throw new Error(`src/${first} is not a room; add it to RANK`);
  return first;
}

function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
}

const sources = walk(SRC);

describe('architecture', () => {
  it('imports never run from a lower room to a higher one, and store and http never import each other', () => {
    const upward: string[] = [];
    for (const file of sources) {
      const from = roomOf(file);
      for (const target of relativeImports(file)) {
        if (!target.startsWith(SRC)) continue;
        const to = roomOf(target);
        if (to === from) continue;
        if (RANK[to] >= RANK[from]) upward.push(`${relative(ROOT, file)} (${from}) -> ${relative(ROOT, target)} (${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it(`no source file is over ${MAX_LINES} lines`, () => {
    const files = [...sources, ...walk(join(ROOT, 'packages/client/src'))];
    const long = files
      .map((file) => ({ file: relative(ROOT, file), lines: readFileSync(file, 'utf8').split('\n').length - 1 }))
      .filter(({ lines }) => lines > MAX_LINES)
      .map(({ file, lines }) => `${file}: ${lines}`);
    expect(long).toEqual([]);
  });

  it('the domain and the HTTP server never import a dialect (they receive the list by injection)', () => {
    const offenders = sources
      .filter((file) => ['domain', 'http', 'store', 'crypto', 'config'].includes(roomOf(file)))
      .filter((file) => relativeImports(file).some((t) => t.startsWith(join(SRC, 'dialects'))))
      .map((file) => relative(ROOT, file));
    expect(offenders).toEqual([]);
  });
});
