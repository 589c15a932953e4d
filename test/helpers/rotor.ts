import { FixedClock } from '../../src/domain/clock.js';
import { MasterKey } from '../../src/crypto/master_key.js';
import { Rotor } from '../../src/domain/rotor.js';
import type { RefreshOutcome, SecurityEvent } from '../../src/domain/events.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite_store.js';
import { dialectDomains } from '../../src/dialects/index.js';

/** The domain alone, over an in-memory SQLite store, with a clock the test moves. */
export async function domainRotor() {
  const clock = new FixedClock(Date.UTC(2026, 5, 1, 12, 0, 0));
  const store = new SqliteStore(':memory:');
  await store.migrate();
  const outcomes: RefreshOutcome[] = [];
  const events: SecurityEvent[] = [];
  const rotor = new Rotor({
    store, clock, masterKey: MasterKey.random(), issuer: 'https://rotor.test',
    observer: { refresh: (o) => outcomes.push(o), event: (e) => events.push(e) },
    dialects: dialectDomains(),
  });
  return { rotor, clock, store, outcomes, events };
}
