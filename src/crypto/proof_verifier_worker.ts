import { parentPort } from 'node:worker_threads';
import { checkProofHere, type DpopProof, type DpopRefusal } from './dpop_proof.js';

/**
 * The proof verifier's thread (see proof_verifier.ts): it receives a turn's DPoP proofs in one message,
 * checks each (dpop_proof.ts: structure, header, signature, claims; its header cache is this thread's),
 * and answers as it goes, in one message per ~1 ms of work (8–10 ES256 proofs): the first requests of a
 * batch need not wait for the last one's arithmetic, and the event loop is not woken per proof.
 */
// A batch travels as one string, each job's proof, htm, htu and time (seconds) on lines of their own: one
// string clones in one copy, where an array of them costs a copy and a header each. No field can hold a
// line break: the verifier sends only proofs of base64url and dots, and its own expectations without one.
export interface VerifyBatch { id: number; jobs: string }
const JOB_FIELDS = 4;
/** Results for the batch's jobs `from`, `from + 1`, …, in order. */
export interface VerifyAnswer { id: number; from: number; results: (DpopProof | DpopRefusal)[] }

/**
 * How much work the thread does before it sends what it has. Each answer costs the event loop a wake-up,
 * a message and its clone: answering every 0.1 ms (about one proof) cost it 10–15 µs more per proof than
 * every 1 ms (bench: native-dpop-sqlite median 2,783 → 3,174 refresh/s over five runs), for ~0.5 ms of
 * added wait on average.
 */
const ANSWER_EVERY_MS = 1;

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
