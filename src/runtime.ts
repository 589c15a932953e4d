import { existsSync, rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, loadMasterKey, masterKeyFile, type Config } from './config.js';
import { systemClock, type Clock } from './domain/clock.js';
import { silentObserver, type Observer } from './domain/events.js';
import { Rotor } from './domain/rotor.js';
import { dialectDomains } from './dialects/index.js';
import type { Store } from './domain/store.js';
import { openStore } from './store/open.js';
import { StoreClock, type SyncResult } from './store/store_clock.js';

/**
 * Opens the configured store and composes the domain: what `serve` and every CLI command start from.
 * Every one of them runs the server's master-key check first (S2-05): a command run without the right
 * master key refuses with one line, before it can seal a new key under a wrong one.
 */
export async function openRotor(options: {
  config?: Config; clock?: Clock; observer?: Observer; logger?: Logger;
} = {}): Promise<{ rotor: Rotor; config: Config }> {
  const config = options.config ?? loadConfig();
  const keyFile = masterKeyFile(config);
  const keyFileIsNew = keyFile !== null && !existsSync(keyFile);
  const masterKey = loadMasterKey(config);
  const store = await openStore(config);
  const clock = options.clock ?? (await storeClock(store, options.logger));
  const rotor = new Rotor({
    store, masterKey, clock, issuer: config.issuer, observer: options.observer ?? silentObserver,
    dialects: dialectDomains(),
  });
  try {
    await rotor.checkPublishedKeys();
  } catch (err) {
    await store.close();
    if (!keyFileIsNew) throw err;
    // The key file was made just now for a database whose keys were sealed under another master key:
    // remove it again, so that the next start with the right key is not refused because of it.
    rmSync(keyFile, { force: true });
    throw new ConfigError(`ROTOR_MASTER_KEY is not set and ${keyFile} did not exist, but this database's signing keys are sealed under a master key: set ROTOR_MASTER_KEY to it (or restore ${keyFile})`);
  }
  return { rotor, config };
}

/** How far off the store's clock this host may run, or an offset may move, before the operator is told. */
const SKEW_WARNING_MS = 1000;

/**
 * The clock instances on a shared store keep time by: the store's, where it has one (PostgreSQL, Redis),
 * else the host's. It stops measuring when the store closes.
 */
async function storeClock(store: Store, logger: Logger | undefined): Promise<Clock> {
  if (!store.clockNow) return systemClock;
  const clock = new StoreClock(systemClock, () => store.clockNow!());
  const report = (result: SyncResult, atStart: boolean) => {
    if (result.ok) {
      if (Math.abs(atStart ? result.offset : result.changedBy) >= SKEW_WARNING_MS) {
        logger?.warn({ event: 'clock_skew', skewMs: clock.skew }, `this host's clock is ${clock.skew} ms off the database's; Rotor keeps time by the database's (check the hosts' NTP)`);
      }
    } else if (result.reason === 'implausible') {
      logger?.error({ event: 'clock_skew', skewMs: -(result.offset ?? 0) }, `this host's clock and the database's differ by more than 5 minutes: one of them is wrong; Rotor keeps ${clock.isSynced ? 'the last offset it trusted' : "this host's clock"} until they agree (fix NTP)`);
    } else if (atStart || !clock.isSynced) {
      logger?.warn({ event: 'clock_unsynced', reason: result.reason }, "the database's clock could not be read; Rotor keeps this host's clock for now and tries again");
    }
  };
  report(await clock.sync(), true);
  clock.start((result) => report(result, false));
  const close = store.close.bind(store);
  store.close = async () => {
    clock.stop();
    await close();
  };
  return clock;
}
