// @ts-check
/**
 * DPoP proofs for the load generator (RFC 9449 §4.2): every call gets a fresh proof — a new `jti`, the
 * current `iat`, the request's `htm` and `htu` — signed ES256 with its session's own key. The private key
 * is imported once per session and the header segment (typ, alg, public jwk) encoded once, so a proof
 * costs one JSON payload, one base64url and one node:crypto signature in this process.
 *
 * A session's key travels from the harness to the load generator as a private JWK inside its state (over
 * the fork's IPC channel only; nothing here prints it).
 *
 * Proofs may be signed ahead (`presign`), before the timed phases start: a real client signs on its own
 * device, so the signature is no cost of the server's, but here the generator shares the server's cores
 * and every signature it makes during the run is CPU the server does not get (~40 µs a proof, a tenth
 * of a bearer refresh). A signed-ahead proof is just as fresh to the server: its own `jti`, an `iat` a
 * few seconds old (the window is five minutes; one older than a minute is not used), this endpoint's
 * `htm` and `htu`. BENCH_DPOP_SIGN=live signs every proof during the run instead.
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
  // Encoded by the generation, not by KeyObject#export: on Node 20 an export racing the garbage collection
  // of an earlier generation can deadlock the process (it hung a bench run; see src/crypto/signing_key.ts).
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { format: 'jwk' }, publicKeyEncoding: { format: 'jwk' } });
  const jwk = /** @type {PrivateJwk} */ (/** @type {unknown} */ (privateKey));
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
/** Proofs signed by this process so far, during a timed phase (`live`) and ahead of it (the generator reports both). */
export const signed = { live: 0, ahead: 0 };

/**
 * A fresh proof for one request. `htu` is the endpoint as the server's issuer names it (SPEC §4.2: htu is
 * judged against ROTOR_ISSUER), not the loopback address the request goes to. `nonce`: the server nonce
 * to carry (RFC 9449 §8), when the app demands one.
 * @param {PrivateJwk} jwk @param {string} htm @param {string} htu @param {string} [nonce]
 */
export function dpopProof(jwk, htm, htu, nonce = undefined) {
  const ahead = presigned.get(jwk);
  while (ahead && ahead.length > 0) {
    const next = /** @type {SignedAhead} */ (ahead.pop());
    if (next.htm === htm && next.htu === htu && next.nonce === nonce && Date.now() / 1000 - next.iat < 60) return next.proof;
  }
  signed.live += 1;
  return signProof(jwk, htm, htu, nonce);
}

/** @param {PrivateJwk} jwk @param {string} htm @param {string} htu @param {string | undefined} nonce */
function signProof(jwk, htm, htu, nonce) {
  const { key, header } = proverFor(jwk);
  jtiCounter += 1;
  const claims = { jti: `${jtiPrefix}${jtiCounter.toString(36)}`, htm, htu, iat: Math.floor(Date.now() / 1000), ...(nonce === undefined ? {} : { nonce }) };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const input = `${header}.${payload}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** @typedef {{ proof: string, htm: string, htu: string, nonce: string | undefined, iat: number }} SignedAhead */
/** Proofs signed ahead, by key; used last-signed first (all are seconds old). @type {WeakMap<PrivateJwk, SignedAhead[]>} */
const presigned = new WeakMap();

/**
 * Signs `count` proofs for `jwk` now, for `dpopProof` to hand out later.
 * @param {PrivateJwk} jwk @param {string} htm @param {string} htu @param {number} count @param {string} [nonce]
 */
export function presign(jwk, htm, htu, count, nonce = undefined) {
  const list = presigned.get(jwk) ?? [];
  const iat = Math.floor(Date.now() / 1000);
  for (let i = 0; i < count; i += 1) list.push({ proof: signProof(jwk, htm, htu, nonce), htm, htu, nonce, iat });
  signed.ahead += count;
  presigned.set(jwk, list);
}
