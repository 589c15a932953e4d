import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { freePort } from './cli.js';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** True when dist/ holds a compiled file, at least as new, for every source file (as after `npm test`'s build). */
function distIsCurrent(): boolean {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
  try {
    return walk(join(ROOT, 'src')).filter((f) => f.endsWith('.ts')).every((ts) => {
      const js = join(ROOT, 'dist', relative(ROOT, ts)).replace(/\.ts$/, '.js');
      return existsSync(js) && statSync(js).mtimeMs >= statSync(ts).mtimeMs;
    });
  } catch {
    return false;
  }
}

/**
 * The `rotor` entry point of the current source: dist/ when it is current (npm test builds it first),
 * else the source compiled into a private directory (not dist/, which other test files and builds
 * write at the same time). Type errors in files under construction elsewhere do not stop tsc from
 * emitting; a missing entry point does.
 */
export async function buildRotor(): Promise<{ main: string; dispose(): void }> {
  if (distIsCurrent()) return { main: join(ROOT, 'dist', 'src', 'cli', 'main.js'), dispose: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'rotor-build-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const output = await new Promise<string>((resolve) => {
    execFile(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json'), '--outDir', dir, '--sourceMap', 'false'], { cwd: ROOT }, (_err, stdout, stderr) => {
      resolve(`${stdout}${stderr}`);
    });
  });
  const main = join(dir, 'src', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`building rotor failed:\n${output}`);
  return { main, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export { freePort };

export interface RotorProcess {
  url: string;
  child: ChildProcess;
  /** Every log line (JSON) the process and its workers wrote. */
  logs: string[];
  /** Process ids that answered HTTP requests, from the request log lines. */
  servingPids(): Set<number>;
  stop(): Promise<void>;
}

/** Starts `rotor serve` (a real process) and waits until it answers /healthz. */
export async function startRotor(main: string, env: Record<string, string>): Promise<RotorProcess> {
  const port = Number(env.ROTOR_PORT ?? (await freePort()));
  const child = spawn(process.execPath, [main, 'serve'], {
    env: { PATH: process.env.PATH ?? '', ROTOR_HOST: '127.0.0.1', ROTOR_LOG_LEVEL: 'debug', ...env, ROTOR_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let pending = '';
  const collect = (chunk: Buffer) => {
    pending += String(chunk);
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    logs.push(...lines.filter(Boolean));
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
  };
  // Wait for readiness: up to ~20 s of attempts, then give up with the process's own output.
  for (let attempt = 0; ; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`rotor serve exited with ${child.exitCode}:\n${logs.join('\n')}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch { /* not listening yet */ }
    if (attempt > 400) {
      await stop();
      throw new Error(`rotor serve did not come up:\n${logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url, child, logs, stop,
    servingPids() {
      const pids = new Set<number>();
      for (const line of logs) {
        try {
          const entry = JSON.parse(line) as { msg?: string; pid?: number };
          if (entry.msg === 'request completed' && typeof entry.pid === 'number') pids.add(entry.pid);
        } catch { /* not JSON */ }
      }
      return pids;
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: any;
}

export async function http(url: string, method: string, path: string, options: { json?: unknown; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const res = await fetch(url + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
  return { status: res.status, headers: res.headers, body: parsed };
}
