import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { verifiesHere, verifiesOnPool } from './proof_signature.js';

/**
 * A DPoP proof's own checks (RFC 9449 §4.3), on whichever thread runs them: the proof verifier's (see
 * proof_verifier.ts), or the event loop with libuv's pool when that thread is down. `typ: dpop+jwt`, an
 * asymmetric `alg` of the allow-list, a public `jwk` of the kind that `alg` names (no private member), a
 * signature by it, `htm` and `htu` of this request, `iat` within the window. The server nonce and the
 * replay check of `jti` are the caller's: they need the master key and the store.
 */

export const DPOP_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const;
/** How far a proof's `iat` may be from now, either way (RFC 9449 §11.1: "a few minutes"). */
export const DPOP_WINDOW_SECONDS = 300;
export const MAX_PROOF_LENGTH = 4096;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** What a proof is judged against: this request's method and endpoint, and the time. */
export interface ProofExpectation { htm: string; htu: string; nowSeconds: number }

export interface DpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key, base64url. */
  jkt: string;
  jti: string;
  iat: number;
  /** The proof's `nonce` claim when it is a string (no other kind can be a server nonce), else null. */
  nonce: string | null;
  /** The proof's identity in the replay cache (RFC 9449 §11.1): its `jti` hashed with its key's thumbprint. */
  replayKey: string;
}

export type DpopRefusal = { error: 'invalid_dpop_proof' | 'use_dpop_nonce'; detail: string };

const bad = (detail: string): DpopRefusal => ({ error: 'invalid_dpop_proof', detail });

/** The checks on the calling thread, the signature's included. */
export function checkProofHere(proof: string, expect: ProofExpectation): DpopProof | DpopRefusal {
  const parts = proofParts(proof);
  if ('error' in parts) return parts;
  return verifiesHere(parts.alg, parts.key, Buffer.from(parts.input), parts.signature) ? claimsOf(parts, expect) : SIGNATURE_REFUSAL;
}

/** The same checks, the signature verified on libuv's pool. */
export async function checkProofOnPool(proof: string, expect: ProofExpectation): Promise<DpopProof | DpopRefusal> {
  const parts = proofParts(proof);
  if ('error' in parts) return parts;
  return (await verifiesOnPool(parts.alg, parts.key, Buffer.from(parts.input), parts.signature)) ? claimsOf(parts, expect) : SIGNATURE_REFUSAL;
}

const SIGNATURE_REFUSAL = bad('the proof signature does not verify with its jwk');

interface ProofParts { alg: string; key: KeyObject; jkt: string; input: string; signature: Buffer; payload: Record<string, unknown> }

/** The proof's structure and header: everything but the signature's arithmetic and the claims. */
function proofParts(proof: string): ProofParts | DpopRefusal {
  if (proof.length > MAX_PROOF_LENGTH) return bad('the proof is too long');
  const parts = proof.split('.');
  if (parts.length !== 3) return bad('the proof is not a compact JWS');
  const [h, p, sig] = parts as [string, string, string];
  const header = checkedHeader(h);
  const payload = jsonSegment(p);
  if (!header || !payload) return bad('the proof is not a compact JWS');
  if (typeof header === 'string') return bad(header);
  const signature = base64urlOrNull(sig);
  if (!signature) return SIGNATURE_REFUSAL;
  return { ...header, input: `${h}.${p}`, signature, payload };
}

/** The claims of a proof whose signature verified. */
function claimsOf({ payload, jkt }: ProofParts, expect: ProofExpectation): DpopProof | DpopRefusal {
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) return bad('jti is required');
  if (payload.htm !== expect.htm) return bad('htm is not this request\'s method');
  const expected = expectedUri(expect.htu);
  if (typeof payload.htu !== 'string' || /[?#]/.test(payload.htu) || expected === null || normalUri(payload.htu) !== expected) return bad('htu is not this endpoint');
  if (typeof payload.iat !== 'number' || !Number.isFinite(payload.iat) || Math.abs(payload.iat - expect.nowSeconds) > DPOP_WINDOW_SECONDS) {
    return bad('iat is outside the accepted window');
  }
  if ('ath' in payload && typeof payload.ath !== 'string') return bad('ath must be a string');
  const nonce = typeof payload.nonce === 'string' ? payload.nonce : null;
  // The key's layout is shared with every release writing the same store (a rolling upgrade): unchanged.
  return { jkt, jti: payload.jti, iat: payload.iat, nonce, replayKey: createHash('sha256').update(`${jkt}:${payload.jti}`).digest('base64url') };
}

/** A proof header that passed every check of its own: its alg, its jwk imported, the jwk's thumbprint. */
interface CheckedHeader { alg: string; key: KeyObject; jkt: string }

/**
 * Headers that passed, by their exact base64url text, most recently used last. A client sends the same
 * header (typ, alg, jwk) with every proof, and importing its jwk is the dearest step of a check after the
 * signature (node:crypto's JWK import costs about as much as an ES256 verification), so a client's second
 * proof reuses the first's KeyObject. Keyed by the text itself, the entry is exactly what checking that text
 * again would give: the checks read nothing else. Only passed headers are kept; the size is bounded.
 */
const checkedHeaders = new Map<string, CheckedHeader>();
const CHECKED_HEADERS_MAX = 4096;

/** The header's checks (RFC 9449 §4.3 items 2–5); null when it is not JSON, a string naming the refusal. */
function checkedHeader(segment: string): CheckedHeader | string | null {
  const known = checkedHeaders.get(segment);
  if (known) {
    checkedHeaders.delete(segment);
    checkedHeaders.set(segment, known);
    return known;
  }
  const header = jsonSegment(segment);
  if (!header) return null;
  if (header.typ !== 'dpop+jwt') return 'typ must be dpop+jwt';
  // RFC 7515 §4.1.11: no extension is understood here; nor does a proof point at keys elsewhere.
  for (const name of ['crit', 'jku', 'x5u', 'x5c', 'kid']) if (name in header) return `the proof header may not carry ${name}`;
  const alg = header.alg;
  if (typeof alg !== 'string' || !(DPOP_ALGORITHMS as readonly string[]).includes(alg)) return `alg must be one of ${DPOP_ALGORITHMS.join(', ')}`;
  const jwk = header.jwk;
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return 'the proof carries no jwk';
  const key = publicKeyFor(alg, jwk as Record<string, unknown>);
  if (typeof key === 'string') return key;
  const checked = { alg, key, jkt: jwkThumbprint(jwk as Record<string, unknown>) };
  if (checkedHeaders.size >= CHECKED_HEADERS_MAX) checkedHeaders.delete(checkedHeaders.keys().next().value as string);
  checkedHeaders.set(segment, checked);
  return checked;
}

/**
 * The thumbprint of the jwk a proof's header names, checking nothing else (no signature, no claims), or
 * why there is none. It lets a proof of a session bound to a key be refused before any signature
 * arithmetic unless it names that key, so that a stolen bound token with proofs of one's own (or with no
 * key at all) never holds that session's places in the verifier's queue. The jwk's required members must
 * be strings (RFC 7638 §3.2 hashes their JSON text; anything else would cost the event loop a stringify of
 * whatever nesting fits in a proof). Cached by the header's text, like the verifier's own header cache.
 */
export function proofKeyThumbprint(proof: string): string | DpopRefusal {
  if (proof.length > MAX_PROOF_LENGTH) return bad('the proof is too long');
  const dot = proof.indexOf('.');
  if (dot <= 0) return bad('the proof is not a compact JWS');
  const segment = proof.slice(0, dot);
  let named = headerThumbprints.get(segment);
  if (named === undefined) {
    named = namedThumbprint(jsonSegment(segment));
    if (headerThumbprints.size >= CHECKED_HEADERS_MAX) headerThumbprints.clear();
    headerThumbprints.set(segment, named);
  }
  return named;
}
const headerThumbprints = new Map<string, string | DpopRefusal>();

function namedThumbprint(header: Record<string, unknown> | null): string | DpopRefusal {
  if (!header) return bad('the proof is not a compact JWS');
  const jwk = header.jwk;
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) return bad('the proof carries no jwk');
  const members = thumbprintMembers.get((jwk as Record<string, unknown>).kty);
  if (!members || !members.every((m) => typeof (jwk as Record<string, unknown>)[m] === 'string')) return bad('the jwk is not a valid public key');
  return jwkThumbprint(jwk as Record<string, unknown>);
}
/** RFC 7638 §3.2's required members by `kty` (a Map: a `kty` of "constructor" names nothing). */
const thumbprintMembers = new Map<unknown, readonly string[]>([['EC', ['crv', 'kty', 'x', 'y']], ['OKP', ['crv', 'kty', 'x']], ['RSA', ['e', 'kty', 'n']]]);

/** RFC 7638: SHA-256 over the required members in lexicographic order, base64url. */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  const members = thumbprintMembers.get(jwk.kty) ?? thumbprintMembers.get('RSA')!;
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

function publicKeyFor(alg: string, jwk: Record<string, unknown>): KeyObject | string {
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) return 'the jwk must be a public key';
  const kinds: Record<string, [string, string | null]> = { ES256: ['EC', 'P-256'], EdDSA: ['OKP', 'Ed25519'], RS256: ['RSA', null], PS256: ['RSA', null] };
  const [kty, crv] = kinds[alg] as [string, string | null];
  if (jwk.kty !== kty || (crv !== null && jwk.crv !== crv)) return `the jwk is not a ${crv ?? kty} key for ${alg}`;
  try {
    const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    if (kty === 'RSA') {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) return 'RSA keys must have at least 2048 bits';
      // A huge modulus or public exponent makes every verification dearer (e ≈ 2^2047 costs ~50×): the
      // client chooses the key, so only the exponent every library uses, and moduli up to 4096 bits.
      if (bits > 4096) return 'RSA keys must have at most 4096 bits';
      if (key.asymmetricKeyDetails?.publicExponent !== 65537n) return 'RSA keys must have the public exponent 65537';
    }
    return key;
  } catch {
    return 'the jwk is not a valid public key';
  }
}

/**
 * The server's own `htu` for an endpoint (`ROTOR_ISSUER` + its path), normalised as a URL parser writes it
 * (RFC 3986 §6.2.3: so an issuer configured with its default port, `https://host:443`, expects
 * `https://host/…`, which is what clients derive from the metadata's endpoint URLs), once: it is one of a
 * handful of constants (two endpoints per issuer, requests for both interleaved). Null (every proof
 * refused) only if it does not parse.
 */
const expectedUris = new Map<string, string | null>();
function expectedUri(htu: string): string | null {
  let uri = expectedUris.get(htu);
  if (uri !== undefined) return uri;
  try {
    const url = new URL(htu);
    uri = `${url.origin.toLowerCase()}${url.pathname}`;
  } catch {
    uri = null;
  }
  if (expectedUris.size >= 64) expectedUris.clear();
  expectedUris.set(htu, uri);
  return uri;
}

/**
 * Scheme, host and path (RFC 9449 §4.3: no query, no fragment), with no normalisation beyond RFC 3986
 * §6.2.2 case: the text must already be what a URL parser would write (so no userinfo, backslashes,
 * whitespace, default ports or numeric host shorthands); scheme and host compare case-insensitively.
 */
const normalUris = new Map<string, string | null>();
function normalUri(uri: string): string | null {
  // A client sends the same htu with every proof: its normal form is parsed once (a pure function of the
  // text; bounded like the header cache, and only signed proofs get here).
  let normal = normalUris.get(uri);
  if (normal === undefined) {
    normal = parsedNormalUri(uri);
    if (normalUris.size >= CHECKED_HEADERS_MAX) normalUris.clear();
    normalUris.set(uri, normal);
  }
  return normal;
}

function parsedNormalUri(uri: string): string | null {
  try {
    const url = new URL(uri);
    if (url.username !== '' || url.password !== '') return null;
    const origin = url.origin;
    if (uri.slice(0, origin.length).toLowerCase() !== origin.toLowerCase() || uri.slice(origin.length) !== url.pathname) return null;
    return `${origin.toLowerCase()}${url.pathname}`;
  } catch {
    return null;
  }
}

function base64urlOrNull(segment: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) return null;
  const bytes = Buffer.from(segment, 'base64url');
  return bytes.toString('base64url') === segment ? bytes : null;
}

function jsonSegment(segment: string): Record<string, unknown> | null {
  const bytes = base64urlOrNull(segment);
  if (!bytes) return null;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
