// The domain's catalogue (apps, their keys, their subjects) over a real in-memory SQLite store, with a
// clock the test moves and the events it emits recorded. Built here, in one place, from the narrowest
// public pieces, so that a move of the store contract or of a constructor is one fix for every test.
import { MasterKey } from '../../src/crypto/master_key.js';
import { Apps } from '../../src/domain/apps.js';
import { FixedClock } from '../../src/domain/clock.js';
import { RotorError } from '../../src/domain/errors.js';
import type { SecurityEvent } from '../../src/domain/events.js';
import { Keyring } from '../../src/domain/keyring.js';
import { Profiles } from '../../src/domain/profiles.js';
import { Subjects } from '../../src/domain/subjects.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite_store.js';
import { dialectDomains } from '../../src/dialects/index.js';

/** Native and every dialect of src/dialects/index.ts, as the runtime hands them to the domain. */
export const profiles = new Profiles(dialectDomains());

export const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);

export async function catalog() {
  const clock = new FixedClock(T0);
  const store = new SqliteStore(':memory:');
  await store.migrate();
  const events: { event: SecurityEvent; fields: Record<string, string | number | null> }[] = [];
  const observer = { refresh: () => {}, event: (event: SecurityEvent, fields: Record<string, string | number | null>) => void events.push({ event, fields }) };
  const masterKey = MasterKey.random();
  const keyring = new Keyring(store, masterKey, clock, profiles);
  const apps = new Apps(store, keyring, clock, observer, profiles);
  const subjects = new Subjects({ store, clock, observer, formats: profiles });
  return { clock, store, masterKey, keyring, apps, subjects, events, close: () => store.close() };
}

export type Catalog = Awaited<ReturnType<typeof catalog>>;

/** The refusal a call ends in, as `code` (and `: detail` when asked): fails the test when it succeeds or throws something else. */
export async function refusal(run: Promise<unknown> | (() => unknown), withDetail = false): Promise<string> {
  try {
    await (typeof run === 'function' ? run() : run);
  } catch (err) {
    if (err instanceof RotorError) return withDetail ? `${err.code}: ${err.detail}` : err.code;
    throw err;
  }
  throw new Error('expected a RotorError, but the call succeeded');
}
