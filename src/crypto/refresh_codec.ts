import { createCipheriv, createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Refresh tokens that name their session and generation without being stored (SPEC §2.9).
 *
 * Opaque (native): `rt_` + base64url(version ‖ session id (16 bytes) ‖ generation (8 bytes) ‖
 * HMAC-SHA256(key, the preceding bytes)) — 57 bytes, 76 characters. The MAC is the token's secret: 256
 * bits under a key derived from the master key, so a guess is refused before any store read, and a
 * database dump holds nothing that mints or recognises one. The same (session, generation) always gives
 * the same token, which is how a grace retry returns the byte-identical successor without keeping it.
 *
 * JWT ids (dialects): one AES-256 block over two 64-bit halves, rendered in the id's own shape (a ULID
 * or a UUID). The JWT's signature already authenticates the id; the cipher makes it readable only by
 * Rotor and lets it carry the session (a locator, or a check of the `sid` claim) and the generation.
 */

const OPAQUE_VERSION = 1;
const OPAQUE_BYTES = 1 + 16 + 8 + 32;
/** Tokens of the release before one-row-per-session: `rt_` + 43 base64url characters (32 random bytes). */
const LEGACY_OPAQUE = /^rt_[A-Za-z0-9_-]{43}$/;
const OPAQUE = /^rt_[A-Za-z0-9_-]{76}$/;

export const isLegacyOpaqueToken = (token: string): boolean => LEGACY_OPAQUE.test(token);
export const isChainOpaqueToken = (token: string): boolean => OPAQUE.test(token);

export function mintOpaque(key: Buffer, sessionId: string, generation: number): string {
  const body = Buffer.alloc(1 + 16 + 8);
  body[0] = OPAQUE_VERSION;
  ulidBytes(sessionId).copy(body, 1);
  body.writeBigUInt64BE(BigInt(generation), 17);
  return `rt_${Buffer.concat([body, createHmac('sha256', key).update(body).digest()]).toString('base64url')}`;
}

/** The session and generation an opaque token names, when its MAC is genuine; null otherwise. */
export function readOpaque(key: Buffer, token: string): { sessionId: string; generation: number } | null {
  if (!OPAQUE.test(token)) return null;
  const raw = Buffer.from(token.slice(3), 'base64url');
  if (raw.length !== OPAQUE_BYTES || raw[0] !== OPAQUE_VERSION || raw.toString('base64url') !== token.slice(3)) return null;
  const body = raw.subarray(0, 25);
  if (!timingSafeEqual(createHmac('sha256', key).update(body).digest(), raw.subarray(25))) return null;
  const generation = raw.readBigUInt64BE(17);
  if (generation > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { sessionId: ulidText(raw.subarray(1, 17)), generation: Number(generation) };
}

/** The stored id of a pre-upgrade opaque token. */
export const legacyOpaqueId = (token: string): string => createHash('sha256').update(token).digest('base64url');

// ── JWT ids ──────────────────────────────────────────────────────────────────────────────────────

export type IdShape = 'ulid' | 'uuid';

/** Bits of an id's payload: a 56-bit session half and the generation. */
const HIGH_BITS = 56n;
const SHAPES = {
  // A ULID keeps its 48-bit time (the mint time, as any ULID); its 80 random bits carry 56 + 24.
  ulid: { bits: 80n, generationBits: 24n },
  // A version-4 UUID has 122 free bits: 56 + 66 (the generation is a safe integer long before that).
  uuid: { bits: 122n, generationBits: 66n },
} as const;

/**
 * `high` (56 bits: a session locator or a check of the session id) and the generation, sealed with a
 * four-round Feistel permutation keyed by `key` (tweaked by the ULID's time part), in the id's shape.
 */
export function sealId(key: Buffer, high: bigint, generation: number, shape: IdShape, timeMs: number): string {
  const { bits, generationBits } = SHAPES[shape];
  if (generation < 1 || BigInt(generation) >= 1n << generationBits) throw new RangeError('generation out of range for this id shape');
  const plain = ((high & ((1n << HIGH_BITS) - 1n)) << generationBits) | BigInt(generation);
  const tweak = shape === 'ulid' ? BigInt(timeMs) & ((1n << 48n) - 1n) : 0n;
  const sealed = feistel(key, plain, bits, tweak, false);
  return shape === 'ulid' ? ulidText(bigBytes((tweak << 80n) | sealed)) : uuidV4Text(sealed);
}

/** The session half and generation of an id sealed by `sealId`; null when the text is not of that shape. */
export function openId(key: Buffer, text: string, shape: IdShape): { high: bigint; generation: number } | null {
  const { bits, generationBits } = SHAPES[shape];
  let sealed: bigint;
  let tweak = 0n;
  if (shape === 'ulid') {
    const bytes = ulidBytesOrNull(text);
    if (!bytes) return null;
    const value = BigInt(`0x${bytes.toString('hex')}`);
    tweak = value >> 80n;
    sealed = value & ((1n << 80n) - 1n);
  } else {
    const value = uuidV4Value(text);
    if (value === null) return null;
    sealed = value;
  }
  const plain = feistel(key, sealed, bits, tweak, true);
  const generation = plain & ((1n << generationBits) - 1n);
  if (generation === 0n || generation > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { high: plain >> generationBits, generation: Number(generation) };
}

/** A 56-bit check of a session id, for ids of profiles whose tokens also carry the session id (`sid`). */
export const sessionCheck = (sessionId: string): bigint => BigInt(`0x${createHash('sha256').update(sessionId).digest('hex').slice(0, 14)}`);

/** A four-round Feistel network over `bits` bits (a PRP by Luby–Rackoff), round functions HMAC-SHA256. */
function feistel(key: Buffer, value: bigint, bits: bigint, tweak: bigint, inverse: boolean): bigint {
  const half = bits / 2n;
  const mask = (1n << half) - 1n;
  let left = value >> half;
  let right = value & mask;
  const round = (i: number, x: bigint): bigint => {
    const mac = createHmac('sha256', key).update(`${i}:${tweak}:${x}`).digest('hex');
    return BigInt(`0x${mac.slice(0, 32)}`) & mask;
  };
  const order = inverse ? [3, 2, 1, 0] : [0, 1, 2, 3];
  for (const i of order) {
    if (inverse) [left, right] = [right ^ round(i, left), left];
    else [left, right] = [right, left ^ round(i, right)];
  }
  return (left << half) | right;
}

const bigBytes = (value: bigint): Buffer => Buffer.from(value.toString(16).padStart(32, '0'), 'hex');

/** 122 bits as a version-4, variant-1 UUID. */
function uuidV4Text(value: bigint): string {
  const a = value >> 74n; // 48 bits
  const b = (value >> 62n) & 0xfffn; // 12 bits
  const c = value & ((1n << 62n) - 1n); // 62 bits
  const hex = (a << 80n) | (4n << 76n) | (b << 64n) | (2n << 62n) | c;
  return uuidText(bigBytes(hex));
}

function uuidV4Value(text: string): bigint | null {
  const bytes = uuidBytesOrNull(text);
  if (!bytes) return null;
  const v = BigInt(`0x${bytes.toString('hex')}`);
  if (((v >> 76n) & 0xfn) !== 4n || ((v >> 62n) & 0x3n) !== 2n) return null;
  return ((v >> 80n) << 74n) | (((v >> 64n) & 0xfffn) << 62n) | (v & ((1n << 62n) - 1n));
}

// ── renderings ───────────────────────────────────────────────────────────────────────────────────

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** 16 bytes as a 26-character ULID (Crockford base32, the top two bits zero). */
export function ulidText(bytes: Buffer): string {
  let value = BigInt(`0x${bytes.toString('hex')}`);
  let out = '';
  for (let i = 0; i < 26; i += 1) {
    out = CROCKFORD[Number(value & 31n)] + out;
    value >>= 5n;
  }
  return out;
}

function ulidBytesOrNull(text: string): Buffer | null {
  if (!/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/i.test(text)) return null;
  let value = 0n;
  for (const c of text.toUpperCase()) value = (value << 5n) | BigInt(CROCKFORD.indexOf(c));
  return Buffer.from(value.toString(16).padStart(32, '0'), 'hex');
}

function ulidBytes(text: string): Buffer {
  const bytes = ulidBytesOrNull(text);
  if (!bytes) throw new Error('not a ULID');
  return bytes;
}

function uuidText(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function uuidBytesOrNull(text: string): Buffer | null {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(text) ? Buffer.from(text.replace(/-/g, ''), 'hex') : null;
}
