import { createHmac, timingSafeEqual } from 'node:crypto';
import { DPOP_WINDOW_SECONDS, MAX_PROOF_LENGTH, type DpopProof, type DpopRefusal, type ProofExpectation } from './dpop_proof.js';
import { proofVerifier, type VerifierBusy } from './proof_verifier.js';

/**
 * DPoP (RFC 9449) for the engine: a proof checked (dpop_proof.ts, on the proof verifier's thread), then
 * the server nonce when the app demands one; and the nonces themselves. The replay check of `jti` needs
 * the store and is the caller's.
 */
export type { VerifierBusy } from './proof_verifier.js';
export { DPOP_ALGORITHMS, DPOP_WINDOW_SECONDS, jwkThumbprint, proofKeyThumbprint, type DpopProof, type DpopRefusal } from './dpop_proof.js';

export async function verifyDpopProof(
  proof: string,
  expect: ProofExpectation & { nonce: ((nonce: unknown) => boolean) | null },
): Promise<DpopProof | DpopRefusal | VerifierBusy> {
  // Refused here, so that no more than a proof's worth of text is ever handed to the thread.
  if (proof.length > MAX_PROOF_LENGTH) return { error: 'invalid_dpop_proof', detail: 'the proof is too long' };
  const checked = await proofVerifier.check(proof, { htm: expect.htm, htu: expect.htu, nowSeconds: expect.nowSeconds });
  if ('error' in checked) return checked;
  if (expect.nonce && !expect.nonce(checked.nonce)) return { error: 'use_dpop_nonce', detail: 'the authorization server requires a DPoP nonce' };
  return checked;
}

/** A thumbprint as sent at issuance (`dpopJkt`): 43 base64url characters. */
export const isJwkThumbprint = (value: unknown): value is string => typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value);

/**
 * Server nonces without state (RFC 9449 §8): the issue time and a MAC of it under a master-key-derived
 * key, so every instance accepts every instance's nonce while it is fresh.
 */
export function issueNonce(key: Buffer, nowSeconds: number, scope: string): string {
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(nowSeconds));
  return Buffer.concat([time, nonceMac(key, time, scope)]).toString('base64url');
}

/** Fresh, and issued for `scope` (an app: one app's nonce is not another's). */
export function isFreshNonce(key: Buffer, nonce: unknown, nowSeconds: number, scope: string): boolean {
  if (typeof nonce !== 'string' || !/^[A-Za-z0-9_-]{32}$/.test(nonce)) return false;
  const raw = Buffer.from(nonce, 'base64url');
  const time = raw.subarray(0, 8);
  const expected = nonceMac(key, time, scope);
  if (!timingSafeEqual(expected, raw.subarray(8))) return false;
  const issued = Number(time.readBigUInt64BE());
  return issued <= nowSeconds + 5 && nowSeconds - issued <= DPOP_WINDOW_SECONDS;
}

const nonceMac = (key: Buffer, time: Buffer, scope: string): Buffer => createHmac('sha256', key).update(time).update(scope).digest().subarray(0, 16);
