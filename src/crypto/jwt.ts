import type { JsonObject } from './types.js';
import type { SigningKey } from './signing_key.js';

const SEGMENT = /^[A-Za-z0-9_-]+$/;
/** Tokens longer than this are refused before any parsing (J-22). */
export const MAX_TOKEN_LENGTH = 8192;

export interface DecodedJwt {
  header: JsonObject;
  payload: JsonObject;
  signingInput: Buffer;
  signature: Buffer;
}

/** How a token's bytes are laid out where a peer's clients compare them (a dialect's own order and encoder). */
export interface JwtEncoding {
  /** The full header for this key, in its byte order (default: `alg`, the extra header fields, `kid`). */
  header?(alg: string, kid: string): JsonObject;
  /** The JSON encoder for header and payload (default: JSON.stringify). */
  json?(value: unknown): string;
}

/** Signs a compact JWS. The header always names the key (`kid`) and its fixed algorithm. */
export function signJwt(key: SigningKey, payload: JsonObject, extraHeader: JsonObject = {}, encoding: JwtEncoding = {}): string {
  const header = encoding.header ? encoding.header(key.alg, key.kid) : { alg: key.alg, ...extraHeader, kid: key.kid };
  const json = encoding.json ?? JSON.stringify;
  const encode = (value: unknown): string => Buffer.from(json(value)).toString('base64url');
  const signingInput = `${encode(header)}.${encode(payload)}`;
  return `${signingInput}.${key.sign(Buffer.from(signingInput)).toString('base64url')}`;
}

/** Strict base64url: decoding then re-encoding must give back the same text (no padding, no stray bits). */
function decodeSegment(segment: string): Buffer | null {
  if (!SEGMENT.test(segment)) return null;
  const bytes = Buffer.from(segment, 'base64url');
  return bytes.toString('base64url') === segment ? bytes : null;
}

function parseObject(bytes: Buffer): JsonObject | null {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : null;
  } catch {
    return null;
  }
}

/**
 * Splits and parses a compact JWS without trusting it. Returns null for anything that is not exactly
 * three canonical base64url segments with JSON-object header and payload.
 */
export function decodeJwt(token: string): DecodedJwt | null {
  if (token.length > MAX_TOKEN_LENGTH) return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [h, p, s] = parts as [string, string, string];
  const headerBytes = decodeSegment(h);
  const payloadBytes = decodeSegment(p);
  const signature = decodeSegment(s);
  if (!headerBytes || !payloadBytes || !signature) return null;
  const header = parseObject(headerBytes);
  const payload = parseObject(payloadBytes);
  if (!header || !payload) return null;
  return { header, payload, signingInput: Buffer.from(`${h}.${p}`), signature };
}

/** Rotor's tokens carry exactly these header parameters; any other (crit, jwk, jku, x5u, x5c, x5t, zip, enc, b64…) is refused. */
const HEADER_PARAMETERS = new Set(['alg', 'kid', 'typ']);

/**
 * Header checks that do not depend on the key: only the parameters Rotor itself writes, and a string
 * `kid`. No critical extensions, no embedded or remote key references, no JWE.
 */
export function headerKid(header: JsonObject): string | null {
  for (const name of Object.keys(header)) if (!HEADER_PARAMETERS.has(name)) return null;
  if (typeof header.alg !== 'string' || typeof header.kid !== 'string') return null;
  if (header.kid.length === 0 || header.kid.length > 64) return null;
  return header.kid;
}

/** Verifies the signature with the one key the kid names; `alg` must equal that key's algorithm. */
export function verifySignature(decoded: DecodedJwt, key: SigningKey): boolean {
  if (decoded.header.alg !== key.alg) return false;
  return key.verify(decoded.signingInput, decoded.signature);
}

/** A NumericDate claim: a finite, non-negative integer number of seconds. */
export function numericDate(value: unknown): number | null {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null;
}
