import { verify, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';

/**
 * node:crypto's arguments for a DPoP proof's signature by `alg` (RFC 7518 §3), shared by every thread
 * that checks one; null when the signature cannot be one of that alg (an ES256 signature is R‖S, 64
 * bytes). High-S is accepted: clients' WebCrypto and node:crypto do not normalise S, and a malleated
 * twin of a proof replays nothing (the replay cache keys on the key and the jti, not on the signature).
 */
function parameters(alg: string, key: KeyObject, signature: Uint8Array): { digest: string | null; key: KeyObject | VerifyKeyObjectInput } | null {
  if (alg === 'ES256') return signature.length === 64 ? { digest: 'sha256', key: { key, dsaEncoding: 'ieee-p1363' } } : null;
  if (alg === 'EdDSA') return { digest: null, key };
  if (alg === 'PS256') return { digest: 'sha256', key: { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 } };
  if (alg === 'RS256') return { digest: 'sha256', key };
  return null;
}

/** The signature check on the calling thread. */
export function verifiesHere(alg: string, key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  const p = parameters(alg, key, signature);
  if (!p) return false;
  try {
    return verify(p.digest, data, p.key, signature);
  } catch {
    return false;
  }
}

/** The same check on libuv's thread pool (node:crypto's asynchronous verify). */
export function verifiesOnPool(alg: string, key: KeyObject, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    const p = parameters(alg, key, signature);
    if (!p) return resolve(false);
    try {
      verify(p.digest, data, p.key, signature, (err, valid) => resolve(err === null && valid));
    } catch {
      resolve(false);
    }
  });
}
