import { randomBytes, randomFillSync } from 'node:crypto';

/**
 * CSPRNG bytes for the hot path, drawn from a pool that OpenSSL refills 4 KiB at a time: one call into
 * the CSPRNG per ~100 refresh tokens instead of one per token (each call costs ~4 µs on its own, about
 * as much as copying out a few hundred bytes). Bytes are copied out, wiped from the pool and never
 * handed out twice. Each process and each worker thread has its own pool (node:cluster forks are new
 * processes, not copies of this one).
 */
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let offset = POOL_SIZE;

function take(size: number): number {
  if (offset + size > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const start = offset;
  offset += size;
  return start;
}

/** `size` bytes from the CSPRNG; large requests go straight to `crypto.randomBytes`. */
export function secureRandomBytes(size: number): Buffer {
  if (size > POOL_SIZE / 8) return randomBytes(size);
  const start = take(size);
  const out = Buffer.allocUnsafe(size);
  pool.copy(out, 0, start, start + size);
  pool.fill(0, start, start + size);
  return out;
}

/**
 * A uniform number in [0, 1) from 32 CSPRNG bits: the `prng` shape that `ulid`'s factories take
 * (its default draws one `crypto.getRandomValues` per character, 16 calls, ~80 µs per new id here).
 */
export function secureRandomUnit(): number {
  const start = take(4);
  const value = pool.readUInt32LE(start);
  pool.fill(0, start, start + 4);
  return value / 0x1_0000_0000;
}
