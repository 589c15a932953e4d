// @ts-check
/**
 * DPoP proofs for the load generator (RFC 9449 §4.2): every call gets a fresh proof — a new `jti`, the
 * current `iat`, the request's `htm` and `htu` — signed ES256 with its session's own key. The private key
 * is imported once per session and the header segment (typ, alg, public jwk) encoded once, so a proof
 * costs one JSON payload, one base64url and one node:crypto signature in this process.
 *
 * A session's key travels from the harness to the load generator as a private JWK inside its state (over
 * the fork's IPC channel only; nothing here prints it).
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

/**
 * @typedef {{ kty: string, crv: string, x: string, y: string, d: string }} PrivateJwk
 * @typedef {{ key: import('node:crypto').KeyObject, header: string }} Prover
 */

/** RFC 7638 SHA-256 thumbprint of an EC key. @param {{ crv: string, kty: string, x: string, y: string }} jwk */
export function thumbprint(jwk) {
  return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })).digest('base64url');
}

/** A new P-256 key for one session: its private JWK and thumbprint (the `dpopJkt` to issue it with). */
export function newDpopKey() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = /** @type {PrivateJwk} */ (privateKey.export({ format: 'jwk' }));
  return { jwk, jkt: thumbprint(jwk) };
}

/** Imported keys by the JWK object a state carries (the state's successors carry the same object). */
/** @type {WeakMap<PrivateJwk, Prover>} */
const provers = new WeakMap();

/** @param {PrivateJwk} jwk @returns {Prover} */
function proverFor(jwk) {
  let prover = provers.get(jwk);
  if (!prover) {
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } };
    prover = { key: createPrivateKey({ key: jwk, format: 'jwk' }), header: Buffer.from(JSON.stringify(header)).toString('base64url') };
    provers.set(jwk, prover);
  }
  return prover;
}

// jti: a random prefix per process and a counter — unique, and cheaper than a CSPRNG draw per proof.
const jtiPrefix = randomBytes(12).toString('base64url');
let jtiCounter = 0;
/** Proofs signed by this process so far (the generator reports them). */
export const signed = { count: 0 };

/**
 * A fresh proof for one request. `htu` is the endpoint as the server's issuer names it (SPEC §4.2: htu is
 * judged against ROTOR_ISSUER), not the loopback address the request goes to.
 * @param {PrivateJwk} jwk @param {string} htm @param {string} htu
 */
export function dpopProof(jwk, htm, htu) {
  const { key, header } = proverFor(jwk);
  jtiCounter += 1;
  const payload = Buffer.from(JSON.stringify({ jti: `${jtiPrefix}${jtiCounter.toString(36)}`, htm, htu, iat: Math.floor(Date.now() / 1000) })).toString('base64url');
  const input = `${header}.${payload}`;
  signed.count += 1;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}
