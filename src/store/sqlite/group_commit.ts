import { StoreUnavailableError } from '../../domain/errors.js';
import { TurnBatcher } from '../turn_batcher.js';
import type { SqliteConnection } from './connection.js';

/**
 * Group commit (see TurnBatcher): the calls of one event-loop turn run in one `BEGIN IMMEDIATE`
 * transaction, each its own statements in arrival order, sharing one COMMIT (which writes each page
 * they share into the WAL once). A lone call is a batch of one. The transaction function is built once
 * (better-sqlite3 builds a wrapper per `transaction()` call).
 */
export function groupCommitted<I, O>(c: SqliteConnection, apply: (input: I) => O): TurnBatcher<I, O> {
  const inOneTransaction = c.db.transaction((inputs: I[]) => inputs.map(apply));
  const commit = (inputs: I[]): Promise<O[]> => c.run(() => {
    const outcomes = inOneTransaction.immediate(inputs);
    c.wrote(inputs.length);
    return outcomes;
  });
  return new TurnBatcher<I, O>(commit, async (input) => (await commit([input]))[0]!, (err) => err instanceof StoreUnavailableError);
}
