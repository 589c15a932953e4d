/**
 * Group commit for a store's hot write. Calls made in one turn of the event loop (all the requests
 * whose bytes arrived together) are handed to `many` together at `setImmediate`, so they share one
 * transaction or one round trip. `many` must give each input its own outcome, exactly as `one` would,
 * and must not let any caller hear of success before what it wrote is committed.
 *
 * If `many` throws, nothing of the batch was committed. An error for which `failsAll` holds (the
 * database is unavailable) fails every caller at once; any other (one input broke a constraint, say)
 * is retried with `one` per input, so only the input at fault fails.
 */
export class TurnBatcher<I, O> {
  private pending: { input: I; resolve: (output: O) => void; reject: (err: unknown) => void }[] = [];

  constructor(
    private readonly many: (inputs: I[]) => Promise<O[]>,
    private readonly one: (input: I) => Promise<O>,
    private readonly failsAll: (err: unknown) => boolean,
  ) {}

  submit(input: I): Promise<O> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => void this.flush());
      this.pending.push({ input, resolve, reject });
    });
  }

  /** Commits what is pending now (also called on close, so accepted calls are not left hanging). */
  async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    if (batch.length === 1) {
      const [only] = batch;
      await this.one(only!.input).then(only!.resolve, only!.reject);
      return;
    }
    let outputs: O[];
    try {
      outputs = await this.many(batch.map((waiter) => waiter.input));
    } catch (err) {
      if (this.failsAll(err)) {
        for (const waiter of batch) waiter.reject(err);
        return;
      }
      await Promise.all(batch.map((waiter) => this.one(waiter.input).then(waiter.resolve, waiter.reject)));
      return;
    }
    batch.forEach((waiter, i) => waiter.resolve(outputs[i]!));
  }
}
