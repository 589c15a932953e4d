import { existsSync, rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, loadMasterKey, masterKeyFile, type Config } from './config.js';
import { systemClock, type Clock } from './domain/clock.js';
import { silentObserver, type Observer } from './domain/events.js';
import { Rotor } from './domain/rotor.js';
import { dialectDomains } from './dialects/index.js';
import { openStore } from './store/open.js';

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
  const rotor = new Rotor({
    store, masterKey, clock: options.clock ?? systemClock, issuer: config.issuer, observer: options.observer ?? silentObserver,
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
