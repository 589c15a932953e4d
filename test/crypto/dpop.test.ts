import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { jwkThumbprint, verifyDpopProof } from '../../src/crypto/dpop.js';

/**
 * verifyDpopProof on its own (RFC 9449 §4.3). A header that passed is remembered by its text (its jwk
 * imported once): these tests pin that a remembered header changes nothing about the proof it comes with.
 */
const HTU = 'https://rotor.test/v1/refresh';
const NOW = 1_800_000_000;
const expectation = { htm: 'POST', htu: HTU, nowSeconds: NOW, nonce: null };
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function ecKey() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, jwk: publicKey.export({ format: 'jwk' }) as Record<string, unknown> };
}

function proof(header: Record<string, unknown>, payload: Record<string, unknown>, signer: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: signer, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

const claims = (extra: Record<string, unknown> = {}) => ({ jti: randomUUID(), htm: 'POST', htu: HTU, iat: NOW, ...extra });

describe('verifyDpopProof', () => {
  it('accepts a proof and names its key by RFC 7638 thumbprint, again with the same header', async () => {
    const key = ecKey();
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk };
    for (let i = 0; i < 2; i += 1) {
      const checked = await verifyDpopProof(proof(header, claims(), key.privateKey), expectation);
      expect(checked).toMatchObject({ jkt: jwkThumbprint(key.jwk), iat: NOW });
    }
  });

  it('a remembered header still needs a signature by its own key over this proof', async () => {
    const key = ecKey();
    const other = ecKey();
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk };
    expect(await verifyDpopProof(proof(header, claims(), key.privateKey), expectation)).not.toHaveProperty('error');
    // The same header text, signed by another key: refused.
    expect(await verifyDpopProof(proof(header, claims(), other.privateKey), expectation))
      .toEqual({ error: 'invalid_dpop_proof', detail: 'the proof signature does not verify with its jwk' });
    // The same header, a signature over other claims than the ones sent: refused.
    const [h, , s] = proof(header, claims(), key.privateKey).split('.');
    expect(await verifyDpopProof(`${h}.${b64(claims({ htm: 'GET' }))}.${s}`, { ...expectation, htm: 'GET' }))
      .toEqual({ error: 'invalid_dpop_proof', detail: 'the proof signature does not verify with its jwk' });
    // The same header, the claims still judged per proof.
    expect(await verifyDpopProof(proof(header, claims({ iat: NOW - 3600 }), key.privateKey), expectation))
      .toEqual({ error: 'invalid_dpop_proof', detail: 'iat is outside the accepted window' });
  });

  it('a refused header is refused every time, and one member more is another header', async () => {
    const key = ecKey();
    const withPrivate = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.privateKey.export({ format: 'jwk' }) };
    for (let i = 0; i < 2; i += 1) {
      expect(await verifyDpopProof(proof(withPrivate, claims(), key.privateKey), expectation))
        .toEqual({ error: 'invalid_dpop_proof', detail: 'the jwk must be a public key' });
    }
    const good = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk };
    expect(await verifyDpopProof(proof(good, claims(), key.privateKey), expectation)).not.toHaveProperty('error');
    expect(await verifyDpopProof(proof({ ...good, kid: 'k1' }, claims(), key.privateKey), expectation))
      .toEqual({ error: 'invalid_dpop_proof', detail: 'the proof header may not carry kid' });
  });
});

describe('verifyDpopProof: htu against the server\'s own endpoint URL', () => {
  it('an issuer configured with its default port expects the URL as a parser writes it; nothing else passes', async () => {
    const key = ecKey();
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk };
    const at = (serverHtu: string, htu: string) => verifyDpopProof(proof(header, claims({ htu }), key.privateKey), { ...expectation, htu: serverHtu });
    expect(await at('https://rotor.test:443/v1/refresh', 'https://rotor.test/v1/refresh')).not.toHaveProperty('error');
    expect(await at('https://ROTOR.test:443/v1/refresh', 'https://rotor.test/v1/refresh')).not.toHaveProperty('error');
    for (const htu of ['https://evil.example:443/x', 'not a url', 'https://rotor.test/v1/other', 'https://rotor.test:443/v1/refresh']) {
      expect(await at('https://rotor.test:443/v1/refresh', htu)).toEqual({ error: 'invalid_dpop_proof', detail: 'htu is not this endpoint' });
    }
    // A server htu that does not parse accepts nothing, not even itself.
    expect(await at('not a url', 'not a url')).toEqual({ error: 'invalid_dpop_proof', detail: 'htu is not this endpoint' });
  });
});

describe('verifyDpopProof: RSA keys the client chooses', () => {
  const rsaProof = (exponent: number, bits = 2048) => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: exponent });
    const header = { typ: 'dpop+jwt', alg: 'RS256', jwk: publicKey.export({ format: 'jwk' }) };
    const input = `${b64(header)}.${b64(claims())}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  };

  it('accepts RS256 with the usual exponent 65537', async () => {
    expect(await verifyDpopProof(rsaProof(65537), expectation)).toMatchObject({ iat: NOW });
  });

  it('refuses another public exponent: a huge one makes each verification ~50x dearer (outside review F4)', async () => {
    expect(await verifyDpopProof(rsaProof(3), expectation)).toMatchObject({ error: 'invalid_dpop_proof' });
    expect(await verifyDpopProof(rsaProof(65539), expectation)).toMatchObject({ error: 'invalid_dpop_proof' });
  });
});
