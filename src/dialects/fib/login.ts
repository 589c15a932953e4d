import { createPublicKey, verify as verifySignature } from 'node:crypto';
import { blake2b } from '@noble/hashes/blake2.js';
import type { LoginRule } from '../../domain/dialect.js';

const ED25519_HEX = /^[0-9a-fA-F]{64}$/;
const ED25519_SIGNATURE_HEX = /^[0-9a-fA-F]{128}$/;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The two digests a FIB client may sign to log in, both BLAKE2b-256 of the UTF-8 e-mail: `plain`, as
 * FIB's current Python and Node examples sign it, and `iroha`, with the lowest bit of the last byte
 * set, as the Iroha SDK's hash (FIB's Kotlin example) makes it. They differ for about half of all
 * addresses; a signature of either by the registered key is as good as the other.
 */
export const FIB_LOGIN_DIGESTS = ['plain', 'iroha'] as const;
export type FibLoginDigest = (typeof FIB_LOGIN_DIGESTS)[number];

/** What a FIB client signs to log in, in one of the two forms FIB's clients produce. */
export function fibLoginDigest(email: string, variant: FibLoginDigest): Buffer {
  const digest = Buffer.from(blake2b(Buffer.from(email, 'utf8'), { dkLen: 32 }));
  if (variant === 'iroha') digest[31] = (digest[31] as number) | 1;
  return digest;
}

export interface FibLoginProof {
  signatureHex: unknown;
  publicKeyHex: unknown;
}

/**
 * FIB login (SPEC §4.4): `signatureHex` must be an Ed25519 signature of either `fibLoginDigest` of the
 * subject (its e-mail), made with the key registered for that subject, and `publicKeyHex` must be that
 * key. A signature that cannot be decoded, a public key that is not one, or either that does not
 * verify, is `invalid_credentials` (FIB's one 422).
 */
export const fibLogin: LoginRule<FibLoginProof> = {
  subjectField: 'email',
  refusal: 'the signature or public key does not verify',
  malformed({ signatureHex, publicKeyHex }) {
    if (typeof signatureHex !== 'string' || !ED25519_SIGNATURE_HEX.test(signatureHex)) return 'signature must be 128 hex characters (an Ed25519 signature)';
    if (typeof publicKeyHex !== 'string' || !ED25519_HEX.test(publicKeyHex)) return 'authPublicKeyHex must be 64 hex characters (a raw Ed25519 public key)';
    return null;
  },
  verifies(subject, { signatureHex, publicKeyHex }) {
    const registered = subject.ed25519PublicKey;
    if (registered === null || registered !== String(publicKeyHex).toLowerCase()) return false;
    try {
      const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(registered, 'hex')]), format: 'der', type: 'spki' });
      const signature = Buffer.from(String(signatureHex), 'hex');
      return FIB_LOGIN_DIGESTS.some((variant) => verifySignature(null, fibLoginDigest(subject.subject, variant), key, signature));
    } catch {
      return false;
    }
  },
};
