import type { RotateInput, RotateResult, RotateSessionResult, Store } from '../domain/store.js';

/**
 * `rotateSession` for a store whose rotation cannot commit a DPoP proof's replay mark in its own write
 * (Redis: the rotation's script runs on the session's slot, the mark lives on another): the mark first,
 * then the rotation. A mark seen before writes nothing; one recorded before a rotation that then fails
 * stays recorded, as a proof checked on its own would (the client's next request brings a fresh proof).
 */
export async function proofThenRotation(
  store: Pick<Store, 'useDpopProof'>, input: RotateInput, rotate: (input: RotateInput) => Promise<RotateResult>,
): Promise<RotateSessionResult> {
  if (input.dpopProof && !(await store.useDpopProof(input.dpopProof))) return { rotated: false, proofReplayed: true };
  return rotate(input);
}
