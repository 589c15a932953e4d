import { parentPort } from 'node:worker_threads';
import { checkProofHere, type DpopProof, type DpopRefusal } from './dpop_proof.js';

/**
 * The proof verifier's thread (see proof_verifier.ts): it receives a turn's DPoP proofs in one message,
 * checks each (dpop_proof.ts: structure, header, signature, claims; its header cache is this thread's),
 * and answers as it goes, in one message per ~100 µs of work: the first requests of a batch need not wait
 * for the last one's arithmetic.
 */
// A batch travels as one string, each job's proof, htm, htu and time (seconds) on lines of their own: one
// string clones in one copy, where an array of them costs a copy and a header each. No field can hold a
// line break: the verifier sends only proofs of base64url and dots, and its own expectations without one.
export interface VerifyBatch { id: number; jobs: string }
const JOB_FIELDS = 4;
/** Results for the batch's jobs `from`, `from + 1`, …, in order. */
export interface VerifyAnswer { id: number; from: number; results: (DpopProof | DpopRefusal)[] }

/** How much work the thread does before it sends what it has. */
const ANSWER_EVERY_MS = 0.1;

if (parentPort === null) throw new Error('proof_verifier_worker.js runs as a worker thread (started by proof_verifier.ts)');
const port = parentPort;

port.on('message', ({ id, jobs }: VerifyBatch) => {
  const fields = jobs.split('\n');
  const count = Math.floor(fields.length / JOB_FIELDS);
  let from = 0;
  let results: (DpopProof | DpopRefusal)[] = [];
  let since = performance.now();
  for (let i = 0; i < count; i++) {
    const [proof, htm, htu, now] = fields.slice(JOB_FIELDS * i, JOB_FIELDS * (i + 1)) as [string, string, string, string];
    results.push(checkProofHere(proof, { htm, htu, nowSeconds: Number(now) }));
    if (i + 1 === count || performance.now() - since >= ANSWER_EVERY_MS) {
      port.postMessage({ id, from, results } satisfies VerifyAnswer);
      from = i + 1;
      results = [];
      since = performance.now();
    }
  }
});
