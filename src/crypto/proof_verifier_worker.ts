import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { verifiesHere } from './proof_signature.js';

/**
 * The proof-signature thread (see proof_verifier.ts): it receives a turn's signatures in one message and
 * answers as it goes, a byte per signature (1 where it verifies), in one message per ~100 µs of work: the
 * first requests of a batch need not wait for the last one's arithmetic. A job names its key by the proof's
 * header segment (the signing input's first), which the event loop has already checked (typ, alg, a public
 * jwk of that alg's kind): the same text imports here to the same key, once per header while it stays in
 * the cache.
 */
// A batch travels as one string, each job's alg, signing input and signature (its base64url text) on lines of
// their own: one string clones in one copy, where an array of them costs a copy and a header each. No field
// can hold a line break (the verifier refuses one that would); a decoded signature could not travel anyway,
// as a small Uint8Array is a view on Buffer's shared 8 KiB pool and structured clone copies the whole pool.
export type VerifyJob = [alg: string, input: string, signature: string];
export interface VerifyBatch { id: number; jobs: string }
/** Answers for the batch's jobs `from`, `from + 1`, …, in order. */
export interface VerifyAnswer { id: number; from: number; valid: Uint8Array }

/** How much work the thread does before it sends what it has. */
const ANSWER_EVERY_MS = 0.1;

if (parentPort === null) throw new Error('proof_verifier_worker.js runs as a worker thread (started by proof_verifier.ts)');
const port = parentPort;

const keys = new Map<string, KeyObject | null>();
const KEYS_MAX = 4096;

function keyOf(header: string): KeyObject | null {
  let key = keys.get(header);
  if (key !== undefined) return key;
  try {
    const jwk = (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { jwk: JsonWebKey }).jwk;
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    key = null;
  }
  if (keys.size >= KEYS_MAX) keys.delete(keys.keys().next().value as string);
  keys.set(header, key);
  return key;
}

port.on('message', ({ id, jobs }: VerifyBatch) => {
  const fields = jobs.split('\n');
  const count = fields.length / 3;
  let from = 0;
  let since = performance.now();
  const valid = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const [alg, input, signature] = fields.slice(3 * i, 3 * i + 3) as VerifyJob;
    const key = keyOf(input.slice(0, input.indexOf('.')));
    valid[i] = key !== null && verifiesHere(alg, key, Buffer.from(input), Buffer.from(signature, 'base64url')) ? 1 : 0;
    if (i + 1 === count || performance.now() - since >= ANSWER_EVERY_MS) {
      port.postMessage({ id, from, valid: valid.slice(from, i + 1) } satisfies VerifyAnswer);
      from = i + 1;
      since = performance.now();
    }
  }
});
