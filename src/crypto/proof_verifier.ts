import { Worker } from 'node:worker_threads';
import { checkProofHere, checkProofOnPool, type DpopProof, type DpopRefusal, type ProofExpectation } from './dpop_proof.js';
import type { VerifyAnswer, VerifyBatch } from './proof_verifier_worker.js';
import { compiledWorkerUrl } from './worker_url.js';

/**
 * DPoP proofs, checked on one thread of their own (dpop_proof.ts: structure, header, signature, claims).
 * An ES256 verification is 50–100 µs of CPU, about as much as the rest of a refresh's event-loop work,
 * and parsing the proof, its claims and its replay key another ~5 µs. node:crypto's asynchronous verify
 * would move the arithmetic alone to libuv's pool, handing each signature over on its own: under load,
 * waking a pool thread per proof cost the event loop 30–100 µs a proof, most of what it saved. Here the
 * proofs that arrive in one turn of the loop go over in one message at `setImmediate`, and their results
 * come back a few at a time as they are checked (a batch's first requests do not wait for its last
 * one's arithmetic); the loop's share is a few µs.
 *
 * If the thread cannot be created or started, dies, or answers nothing for 5 s while a batch is owed,
 * every proof in flight and every one for the next 30 s is checked on the event loop with the signature
 * on the pool instead, then a new thread is tried: a failure costs speed, never an answer.
 *
 * At most `maxOwed` proofs wait at once (queued, on the thread or on the pool): about a second of the
 * thread's work. Past it a proof is answered `server_busy` at once, checked for nothing and consuming
 * nothing, rather than queued: a flood of proofs (pipelined requests need no new connections) must not
 * grow the queue, its memory and every other client's wait without bound.
 */
const MAX_BATCH = 256;
const ANSWER_DEADLINE_MS = 5000;
/** How long the pool serves after the thread failed, before a new thread is tried. */
const RETRY_AFTER_MS = 30_000;
const MAX_OWED = 16_384;

/** How the thread failed: it could not be created, it stopped or threw, or it left a batch unanswered. */
export type VerifierFailure = 'not_created' | 'exited' | 'silent';

/** A proof not checked because too many are waiting: the request may be retried shortly. */
export interface VerifierBusy { error: 'server_busy'; detail: string }
const BUSY: VerifierBusy = { error: 'server_busy', detail: 'too many DPoP proofs are waiting to be checked; retry shortly' };

type ProofResult = DpopProof | DpopRefusal;
interface Waiter { proof: string; expect: ProofExpectation; resolve: (result: ProofResult) => void }
/** A batch on the thread; its results come in order, `answered` of them so far. */
interface SentBatch { waiters: Waiter[]; answered: number }
const checkOnPool = (w: Waiter): void => void checkProofOnPool(w.proof, w.expect).then(w.resolve);
const packJobs = (waiters: readonly Waiter[]): string =>
  waiters.map((w) => `${w.proof}\n${w.expect.htm}\n${w.expect.htu}\n${w.expect.nowSeconds}`).join('\n');
/** What a proof sent to the thread may hold: base64url segments and their dots (never the packing's line break). */
const JWS_TEXT = /^[A-Za-z0-9_.-]*$/;

export class ProofVerifier {
  private worker: Worker | null = null;
  /** Until when proofs are checked on the loop and the pool, after the thread failed (then a new thread is tried). */
  private poolUntil = 0;
  private queued: Waiter[] = [];
  private readonly sent = new Map<number, SentBatch>();
  private nextId = 1;
  /** When the thread last answered a batch: a deadline passes only for a thread that made no progress. */
  private answeredAt = 0;
  private readonly failureListeners = new Set<(failure: VerifierFailure) => void>();
  /** Proofs handed over and not yet answered. */
  private owed = 0;
  /** How many may be owed before more are answered `server_busy` (tests lower it). */
  maxOwed: number;

  private readonly url: URL;
  private readonly deadlineMs: number;
  private readonly retryAfterMs: number;

  constructor(options: { url?: URL; deadlineMs?: number; retryAfterMs?: number; maxOwed?: number } = {}) {
    this.url = options.url ?? compiledWorkerUrl(import.meta.url, 'proof_verifier_worker.js');
    this.deadlineMs = options.deadlineMs ?? ANSWER_DEADLINE_MS;
    this.retryAfterMs = options.retryAfterMs ?? RETRY_AFTER_MS;
    this.maxOwed = options.maxOwed ?? MAX_OWED;
  }

  /** The proof's checks (see dpop_proof.ts): what it proves, or why it is refused. */
  check(proof: string, expect: ProofExpectation): Promise<ProofResult | VerifierBusy> {
    // Any other character fails a base64url check before any signature arithmetic: refused right here.
    if (!JWS_TEXT.test(proof)) return Promise.resolve(checkProofHere(proof, expect));
    if (this.owed >= this.maxOwed) return Promise.resolve(BUSY);
    this.owed++;
    if (this.onPool || expect.htm.includes('\n') || expect.htu.includes('\n')) return checkProofOnPool(proof, expect).finally(() => this.owed--);
    return new Promise((resolve) => {
      if (this.queued.length === 0) setImmediate(() => this.flush());
      this.queued.push({ proof, expect, resolve: (result) => { this.owed--; resolve(result); } });
    });
  }

  /** Whether signatures go to the pool: the thread failed less than `retryAfterMs` ago. */
  get onPool(): boolean {
    return Date.now() < this.poolUntil;
  }

  /**
   * Calls `listener` at each failure of the thread (a server logs it and counts it in its metrics: the
   * answers stay right, but they cost the event loop more). Returns the function that stops the calls.
   */
  onFailure(listener: (failure: VerifierFailure) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  /** Stops the thread (tests; a server's process simply exits). Later checks start a new one. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    await worker.terminate();
    this.checkOwedOnPool();
  }

  private flush(): void {
    while (this.queued.length > 0) {
      const batch = this.queued.splice(0, MAX_BATCH);
      const worker = this.onPool ? null : this.started();
      if (!worker) {
        for (const w of batch) checkOnPool(w);
        continue;
      }
      const id = this.nextId++;
      this.sent.set(id, { waiters: batch, answered: 0 });
      this.watch(worker, id);
      // Held only while answers are owed: an idle verifier never keeps a process alive.
      worker.ref();
      worker.postMessage({ id, jobs: packJobs(batch) } satisfies VerifyBatch);
    }
  }

  /**
   * A thread that leaves batch `id` unanswered past the deadline, answering nothing else meanwhile, is
   * taken for stuck. Checked at setImmediate, after the loop has read the answers already delivered (a
   * blocked loop is not the thread's fault); a thread still answering earlier batches gets more time.
   */
  private watch(worker: Worker, id: number): void {
    const armedAt = Date.now();
    setTimeout(() => setImmediate(() => {
      if (!this.sent.has(id) || this.worker !== worker) return;
      if (this.answeredAt > armedAt) return this.watch(worker, id);
      this.fail(worker, 'silent');
      void worker.terminate();
    }), this.deadlineMs).unref();
  }

  /** The running thread, or a new one; null (and the pool for a while) when none can be created. */
  private started(): Worker | null {
    if (this.worker) return this.worker;
    let worker: Worker;
    try {
      worker = new Worker(this.url);
    } catch {
      // No thread to be had (a process or thread limit: ERR_WORKER_INIT_FAILED is thrown, not emitted).
      this.poolUntil = Date.now() + this.retryAfterMs;
      this.tell('not_created');
      return null;
    }
    worker.on('message', ({ id, from, results }: VerifyAnswer) => {
      const batch = this.sent.get(id);
      if (!batch) return;
      if (from !== batch.answered) {
        // Answers out of order would leave requests waiting with no deadline to save them: the thread is
        // taken for broken, and what it owes goes to the pool.
        this.fail(worker, 'exited');
        void worker.terminate();
        return;
      }
      this.answeredAt = Date.now();
      results.forEach((result, i) => batch.waiters[from + i]?.resolve(result));
      batch.answered += results.length;
      if (batch.answered >= batch.waiters.length) this.sent.delete(id);
      if (this.sent.size === 0) worker.unref();
    });
    worker.on('error', () => this.fail(worker, 'exited'));
    worker.on('exit', () => this.fail(worker, 'exited'));
    this.worker = worker;
    return worker;
  }

  /** The thread is gone: what it owed is checked on the pool, and so is everything for `retryAfterMs`. */
  private fail(worker: Worker, failure: VerifierFailure): void {
    if (this.worker !== worker) return; // closed on purpose, or already failed
    this.worker = null;
    this.poolUntil = Date.now() + this.retryAfterMs;
    this.checkOwedOnPool();
    this.tell(failure);
  }

  private tell(failure: VerifierFailure): void {
    for (const listener of this.failureListeners) {
      try {
        listener(failure);
      } catch {
        // A listener's fault is not the verifier's: the answers go on.
      }
    }
  }

  private checkOwedOnPool(): void {
    const owed = [...this.sent.values()].flatMap((batch) => batch.waiters.slice(batch.answered));
    this.sent.clear();
    for (const w of owed) checkOnPool(w);
  }
}

/** The process's verifier (one thread serves every Rotor in it). */
export const proofVerifier = new ProofVerifier();
