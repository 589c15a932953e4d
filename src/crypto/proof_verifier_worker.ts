import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { verifiesHere } from './proof_signature.js';

/**
 * The proof-signature thread (see proof_verifier.ts): it receives a turn's signatures in one message and
 * answers with one byte per signature, 1 where it verifies. A job names its key by the proof's header
 * segment, which the event loop has already checked (typ, alg, a public jwk of that alg's kind): the same
 * text imports here to the same key, once per header while it stays in the cache.
 */
// The signature travels as its base64url text: a Uint8Array decoded from it is, when small, a view on
// Buffer's shared 8 KiB pool, and structured clone would copy the whole pool with each one.
export type VerifyJob = [alg: string, header: string, input: string, signature: string];
export interface VerifyBatch { id: number; jobs: VerifyJob[] }
export interface VerifyAnswer { id: number; valid: Uint8Array }

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
  const valid = new Uint8Array(jobs.length);
  jobs.forEach(([alg, header, input, signature], i) => {
    const key = keyOf(header);
    valid[i] = key !== null && verifiesHere(alg, key, Buffer.from(input), Buffer.from(signature, 'base64url')) ? 1 : 0;
  });
  port.postMessage({ id, valid } satisfies VerifyAnswer);
});
