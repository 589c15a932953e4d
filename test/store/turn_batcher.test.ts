import { describe, expect, it } from 'vitest';
import { TurnBatcher } from '../../src/store/turn_batcher.js';

class Unavailable extends Error {}

/** A batcher over plain functions, recording the batches it was handed. */
function recording(options: {
  many?: (inputs: number[]) => Promise<(string | Promise<string>)[]>;
  one?: (input: number) => Promise<string>;
} = {}) {
  const batches: number[][] = [];
  const singles: number[] = [];
  const batcher = new TurnBatcher<number, string>(
    (inputs) => {
      batches.push(inputs);
      return options.many ? options.many(inputs) : Promise.resolve(inputs.map((n) => `many:${n}`));
    },
    (input) => {
      singles.push(input);
      return options.one ? options.one(input) : Promise.resolve(`one:${input}`);
    },
    (err) => err instanceof Unavailable,
  );
  return { batcher, batches, singles };
}

describe('TurnBatcher (group commit)', () => {
  it('hands the calls of one turn over together, each caller getting its own outcome; a lone call goes alone', async () => {
    const { batcher, batches, singles } = recording();
    expect(await Promise.all([1, 2, 3].map((n) => batcher.submit(n)))).toEqual(['many:1', 'many:2', 'many:3']);
    expect(await batcher.submit(4)).toBe('one:4');
    expect(batches).toEqual([[1, 2, 3]]);
    expect(singles).toEqual([4]);
  });

  it('carries at most 256 calls per batch; the rest follow in the next', async () => {
    const { batcher, batches } = recording();
    const outcomes = await Promise.all(Array.from({ length: 600 }, (_, i) => batcher.submit(i)));
    expect(outcomes[599]).toBe('many:599');
    expect(batches.map((b) => b.length)).toEqual([256, 256, 88]);
  });

  it('drain (on close) commits everything pending at once, however many batches that takes', async () => {
    const { batcher, batches } = recording();
    const outcomes = Array.from({ length: 300 }, (_, i) => batcher.submit(i));
    await batcher.drain(); // before the turn ends
    expect(batches.map((b) => b.length)).toEqual([256, 44]);
    expect(await outcomes[299]).toBe('many:299');
  });

  it('a batch that fails on one input is retried one by one: only that input fails', async () => {
    const { batcher, singles } = recording({
      many: () => Promise.reject(new Error('constraint')),
      one: (n) => (n === 2 ? Promise.reject(new Error(`bad ${n}`)) : Promise.resolve(`one:${n}`)),
    });
    const settled = await Promise.allSettled([1, 2, 3].map((n) => batcher.submit(n)));
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual(['one:1', 'bad 2', 'one:3']);
    expect(singles).toEqual([1, 2, 3]);
  });

  it('an unavailable database fails every caller at once, with no retries', async () => {
    const { batcher, singles } = recording({ many: () => Promise.reject(new Unavailable('down')) });
    const settled = await Promise.allSettled([1, 2].map((n) => batcher.submit(n)));
    expect(settled.every((s) => s.status === 'rejected' && s.reason instanceof Unavailable)).toBe(true);
    expect(singles).toEqual([]);
  });

  it('an outcome given as a promise settles that caller alone', async () => {
    const { batcher } = recording({ many: (inputs) => Promise.resolve(inputs.map((n) => (n === 2 ? Promise.reject(new Error('own')) : `many:${n}`))) });
    const settled = await Promise.allSettled([1, 2, 3].map((n) => batcher.submit(n)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });

  it('a batch that answers for the wrong number of inputs fails every caller and is not retried (its writes may be committed)', async () => {
    const { batcher, singles } = recording({ many: () => Promise.resolve(['only one']) });
    const settled = await Promise.allSettled([1, 2].map((n) => batcher.submit(n)));
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    expect(singles).toEqual([]);
  });

  it('a single call that throws synchronously rejects its caller, not the process', async () => {
    const batcher = new TurnBatcher<number, string>(
      () => Promise.resolve([]),
      () => { throw new Error('sync'); },
      () => false,
    );
    await expect(batcher.submit(1)).rejects.toThrow('sync');
  });
});
