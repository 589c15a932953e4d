import {
  createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify,
  timingSafeEqual, type KeyObject,
} from 'node:crypto';
import type { Algorithm, JsonObject } from './types.js';

/** Freshly generated key material: the private part (to be sealed) and the public JWK (null for HMAC). */
export interface GeneratedKey {
  secret: Buffer;
  publicJwk: JsonObject | null;
}

export const MIN_HMAC_SECRET_BYTES = 32;

/** P-256 group order and half of it: ECDSA signatures are kept (and required) in low-S form. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_N = P256_N >> 1n;

const toBigInt = (bytes: Buffer): bigint => BigInt(`0x${bytes.toString('hex') || '0'}`);

/**
 * ECDSA is malleable: (r, s) and (r, n − s) both verify. Rotor signs only with s ≤ n/2 and refuses the
 * other form, so a token has exactly one valid encoding (SECURITY-CASES J-14).
 */
function lowS(signature: Buffer): Buffer {
  const s = toBigInt(signature.subarray(32));
  if (s <= P256_HALF_N) return signature;
  const flipped = Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex');
  return Buffer.concat([signature.subarray(0, 32), flipped]);
}

const isLowS = (signature: Buffer): boolean => toBigInt(signature.subarray(32)) <= P256_HALF_N;
export const MIN_RSA_BITS = 2048;

export function generateKeyMaterial(alg: Algorithm, kid: string): GeneratedKey {
  if (alg === 'HS256') return { secret: randomBytes(32), publicJwk: null };
  // Encoded by the generation itself, never by KeyObject#export afterwards: on Node 20, exporting a JWK
  // while a garbage collection finalises an earlier key generation can deadlock the thread for good
  // (seen: generateKeyPairSync + export({ format: 'jwk' }) in a loop hangs within seconds; test/crypto).
  const encodings = { publicKeyEncoding: { format: 'jwk' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } } as const;
  // (@types/node has no overload for a 'jwk' encoding: the result is a JWK object and a DER buffer.)
  const pair = (
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256', ...encodings })
    : alg === 'EdDSA' ? generateKeyPairSync('ed25519', encodings)
    : generateKeyPairSync('rsa', { modulusLength: 2048, ...encodings })
  ) as unknown as { publicKey: JsonObject; privateKey: Buffer };
  return { secret: pair.privateKey, publicJwk: { ...pair.publicKey, kid, alg, use: 'sig' } };
}

/**
 * A signing key ready for use: imported into a KeyObject once, so the hot path never parses key material.
 * `alg` is fixed per key; verification refuses any other algorithm (no confusion between key types).
 */
export class SigningKey {
  readonly kid: string;
  readonly alg: Algorithm;
  private readonly privateKey: KeyObject | null;
  private readonly publicKey: KeyObject | null;
  private readonly hmacSecret: Buffer | null;
  /** Expected raw signature length: a shorter or longer one is refused before any crypto. */
  private readonly signatureLength: number;
  private pem: string | null | undefined;

  constructor(kid: string, alg: Algorithm, secret: Buffer) {
    this.kid = kid;
    this.alg = alg;
    if (alg === 'HS256') {
      if (secret.length < MIN_HMAC_SECRET_BYTES) throw new Error(`HS256 secret of key ${kid} is shorter than 32 bytes`);
      this.hmacSecret = secret;
      this.privateKey = null;
      this.publicKey = null;
      this.signatureLength = 32;
      return;
    }
    this.hmacSecret = null;
    this.privateKey = createPrivateKey({ key: secret, format: 'der', type: 'pkcs8' });
    this.publicKey = createPublicKey(this.privateKey);
    const expectedType = alg === 'ES256' ? 'ec' : alg === 'EdDSA' ? 'ed25519' : 'rsa';
    if (this.privateKey.asymmetricKeyType !== expectedType) throw new Error(`key ${kid} is not a ${alg} key`);
    if (alg === 'RS256') {
      const bits = this.privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) throw new Error(`RSA key ${kid} has ${bits} bits; at least 2048 are required`);
      this.signatureLength = bits / 8;
    } else {
      this.signatureLength = 64;
    }
  }

  sign(data: Buffer): Buffer {
    switch (this.alg) {
      case 'HS256': return createHmac('sha256', this.hmacSecret as Buffer).update(data).digest();
      case 'ES256': return lowS(sign('sha256', data, { key: this.privateKey as KeyObject, dsaEncoding: 'ieee-p1363' }));
      case 'EdDSA': return sign(null, data, this.privateKey as KeyObject);
      case 'RS256': return sign('sha256', data, this.privateKey as KeyObject);
    }
  }

  verify(data: Buffer, signature: Buffer): boolean {
    if (signature.length !== this.signatureLength) return false;
    switch (this.alg) {
      case 'HS256': return timingSafeEqual(this.sign(data), signature);
      case 'ES256':
        return isLowS(signature) && verify('sha256', data, { key: this.publicKey as KeyObject, dsaEncoding: 'ieee-p1363' }, signature);
      case 'EdDSA': return verify(null, data, this.publicKey as KeyObject, signature);
      case 'RS256': return verify('sha256', data, this.publicKey as KeyObject, signature);
    }
  }

  /** SubjectPublicKeyInfo PEM text of the public key (null for HMAC keys). */
  publicPem(): string | null {
    // Exported once per key: jwtplus answers carry it on every renewal, and an export costs a DER
    // encoding plus base64 (~7% of a jwtplus renewal's CPU when done per request).
    if (this.pem === undefined) this.pem = this.publicKey ? (this.publicKey.export({ format: 'pem', type: 'spki' }) as string) : null;
    return this.pem;
  }
}
