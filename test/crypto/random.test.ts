import { describe, expect, it } from 'vitest';
import { secureRandomBytes, secureRandomUnit } from '../../src/crypto/random.js';

describe('pooled CSPRNG', () => {
  it('never hands out the same bytes twice, across many pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i += 1) seen.add(secureRandomBytes(32).toString('hex'));
    expect(seen.size).toBe(5000);
  });

  it('returns buffers of the asked size that later draws do not change', () => {
    const first = secureRandomBytes(12);
    const copy = Buffer.from(first);
    for (let i = 0; i < 1000; i += 1) secureRandomBytes(32);
    expect(first.length).toBe(12);
    expect(first.equals(copy)).toBe(true);
    expect(secureRandomBytes(4096).length).toBe(4096);
  });

  it('draws units in [0, 1) that spread over the whole range', () => {
    const draws = Array.from({ length: 4000 }, () => secureRandomUnit());
    expect(draws.every((u) => u >= 0 && u < 1)).toBe(true);
    const buckets = new Array(8).fill(0);
    for (const u of draws) buckets[Math.floor(u * 8)] += 1;
    // 500 expected per bucket; a broken source (constant, half-range) misses this by far.
    expect(Math.min(...buckets)).toBeGreaterThan(350);
  });
});
