/**
 * Where a worker thread's compiled file is. Built (dist/, production), it is the calling module's
 * sibling. Run from the TypeScript sources (vitest transforms src/*.ts for its own imports, but a worker
 * thread is a plain Node 20 module load, which cannot run .ts), there is no sibling .js: the build's copy
 * is used, dist/ mirroring the tree (tsconfig: rootDir ".", outDir "dist"). Without a build that worker
 * fails to load, and each caller falls back to doing the work on its own thread.
 */
export function compiledWorkerUrl(moduleUrl: string, file: string): URL {
  const sibling = new URL(`./${file}`, moduleUrl);
  if (!moduleUrl.endsWith('.ts')) return sibling;
  const at = sibling.href.lastIndexOf('/src/');
  return new URL(`${sibling.href.slice(0, at)}/dist${sibling.href.slice(at)}`);
}
