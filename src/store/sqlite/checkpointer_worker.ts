import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * The checkpointer's thread (see checkpointer.ts): its own connection to the store's file, with the
 * store's `synchronous` (so the same durability), runs PASSIVE checkpoints every `everyMs` while frames
 * keep arriving and every `idleMs` when none did. It posts `ready` once its first pass has run, and
 * on any message from the store closes its connection and ends.
 */
export interface CheckpointerData {
  path: string;
  synchronous: 'NORMAL' | 'FULL';
  everyMs: number;
  idleMs: number;
}

if (parentPort === null) throw new Error('checkpointer_worker.js runs as a worker thread (started by checkpointer.ts)');
const port = parentPort;
const data = workerData as CheckpointerData;
const db = new Database(data.path, { fileMustExist: true });
db.pragma(`synchronous = ${data.synchronous}`);

let timer: NodeJS.Timeout | undefined;
let lastLog = -1;

function pass(): void {
  let idle = false;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { log: number; checkpointed: number }[];
    // Idle only when no frame was added since the last pass: being caught up is the normal state
    // under load, and waiting the idle interval then lets the WAL grow for 200 ms at a time.
    idle = r !== undefined && r.log === r.checkpointed && r.log === lastLog;
    lastLog = r?.log ?? -1;
  } catch { /* the main connection reports real trouble */ }
  timer = setTimeout(pass, idle ? data.idleMs : data.everyMs);
}

pass();
port.postMessage('ready');
port.on('message', () => {
  clearTimeout(timer);
  try { db.close(); } catch { /* closing anyway */ }
  port.close();
});
