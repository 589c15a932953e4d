import { Worker } from 'node:worker_threads';
import { compiledWorkerUrl } from '../../crypto/worker_url.js';
import type { CheckpointerData } from './checkpointer_worker.js';

/**
 * WAL checkpoints off the event loop. A checkpoint copies pages from the WAL into the database file
 * and fsyncs both; SQLite's automatic one runs inside whichever COMMIT crosses 1,000 WAL pages, i.e. on
 * the event loop, stalling every request in flight. Once a store has seen sustained writes, a worker
 * thread (checkpointer_worker.ts) with its own connection runs PASSIVE checkpoints every 10 ms while
 * frames keep arriving; they never block writers. A write that finds the whole WAL copied restarts it
 * from its beginning, so under load the WAL stays at a few hundred pages. The main connection's
 * automatic checkpoint stays on at a higher mark, a backstop should the worker fall behind.
 * Commits, their durability and their order are exactly as before.
 */
export const CHECKPOINTER_AFTER_WRITES = 500;
const CHECKPOINT_EVERY_MS = 10;
/** When no frame was added since the last pass. */
const CHECKPOINT_IDLE_MS = 200;

/** The worker's compiled file (beside this module once built; dist/'s copy when run from the sources). */
export function checkpointerWorkerUrl(moduleUrl: string = import.meta.url): URL {
  return compiledWorkerUrl(moduleUrl, 'checkpointer_worker.js');
}

/** A running checkpointer thread. */
export class Checkpointer {
  private readonly worker: Worker;
  /** Resolves once the worker has opened its connection and run a first pass; rejects if it failed to start. */
  readonly ready: Promise<void>;

  /** `onFailure`: the worker died (or never started); the caller restores SQLite's own checkpoints. */
  constructor(path: string, synchronous: 'NORMAL' | 'FULL', onFailure: () => void, url: URL = checkpointerWorkerUrl()) {
    const workerData: CheckpointerData = { path, synchronous, everyMs: CHECKPOINT_EVERY_MS, idleMs: CHECKPOINT_IDLE_MS };
    this.worker = new Worker(url, { workerData });
    this.worker.unref();
    this.ready = new Promise<void>((resolve, reject) => {
      this.worker.once('message', () => resolve());
      this.worker.once('error', reject);
      this.worker.once('exit', () => reject(new Error('the checkpointer exited before it was ready')));
    });
    this.ready.catch(() => {}); // nobody need wait for it; failures go to onFailure
    this.worker.on('error', onFailure);
  }

  /** Stops the worker; it closes its connection first, so the store's connection is the last to close. */
  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage('stop');
    const timer = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
