import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { decodeJwtPart } from './server.js';

/**
 * Verifies an ES256/EdDSA/RS256 JWT against a JWKS with node:crypto only: an independent path from
 * the code that signs. Returns the payload; throws when the kid is unknown or the signature fails.
 */
export function verifyWithJwks(token: string, jwks: { keys: Record<string, any>[] }): Record<string, any> {
  const [h, p, s] = token.split('.') as [string, string, string];
  const header = decodeJwtPart(token, 0);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error('kid not in JWKS');
  const key = createPublicKey({ key: jwk as any, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  const ok = header.alg === 'ES256' ? cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
    : header.alg === 'EdDSA' ? cryptoVerify(null, data, key, sig)
    : header.alg === 'RS256' ? cryptoVerify('sha256', data, key, sig) : false;
  if (!ok) throw new Error('signature does not verify');
  return decodeJwtPart(token, 1);
}
