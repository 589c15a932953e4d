/** One statement or transaction carries at most this many calls; the rest go in the next. */
const MAX_BATCH = 256;

/**
 * Group commit for a store's hot write. Calls made in one turn of the event loop (all the requests
 * whose bytes arrived together) are handed to `many` together at `setImmediate`, so they share one
 * transaction or one round trip. `many` must give each input its own outcome, exactly as `one` would,
 * and must not let any caller hear of success before what it wrote is committed.
 *
 * If `many` throws, nothing of the batch may have been committed: it must throw only before or
 * instead of its COMMIT. An error for which `failsAll` holds (the database is unavailable) fails every
 * caller at once; any other (one input broke a constraint, say) is retried with `one` per input, so
 * only the input at fault fails.
 */
export class TurnBatcher<I, O> {
  private pending: { input: I; resolve: (output: O | PromiseLike<O>) => void; reject: (err: unknown) => void }[] = [];

  constructor(
    /** One outcome per input; an input `many` could not decide may get a promise of its own outcome. */
    private readonly many: (inputs: I[]) => Promise<(O | Promise<O>)[]>,
    private readonly one: (input: I) => Promise<O>,
    private readonly failsAll: (err: unknown) => boolean,
  ) {}

  submit(input: I): Promise<O> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => void this.flush());
      this.pending.push({ input, resolve, reject });
    });
  }

  /** Commits everything pending (on close, so that accepted calls are not left hanging). */
  async drain(): Promise<void> {
    while (this.pending.length > 0) await this.flush();
  }

  /** Commits the next batch. Never rejects: every outcome, failures included, goes to its caller. */
  private async flush(): Promise<void> {
    const batch = this.pending.splice(0, MAX_BATCH);
    if (this.pending.length > 0) setImmediate(() => void this.flush());
    if (batch.length === 0) return;
    const alone = (waiter: (typeof batch)[number]): Promise<void> =>
      Promise.resolve().then(() => this.one(waiter.input)).then(waiter.resolve, waiter.reject);
    if (batch.length === 1) return alone(batch[0]!);
    let outputs: (O | Promise<O>)[];
    try {
      outputs = await this.many(batch.map((waiter) => waiter.input));
    } catch (err) {
      if (this.failsAll(err)) {
        for (const waiter of batch) waiter.reject(err);
        return;
      }
      await Promise.all(batch.map(alone));
      return;
    }
    if (outputs.length !== batch.length) {
      // A bug in `many`: what it wrote may be committed, so never retry (a retry would see its own
      // writes as someone else's); every caller fails.
      const bug = new Error(`a batch of ${batch.length} gave ${outputs.length} outcomes`);
      for (const waiter of batch) waiter.reject(bug);
      return;
    }
    batch.forEach((waiter, i) => waiter.resolve(outputs[i]!));
  }
}
