import type { Logger } from 'pino';
import { loadConfig, loadMasterKey, type Config } from './config.js';
import { systemClock, type Clock } from './domain/clock.js';
import { silentObserver, type Observer } from './domain/events.js';
import { Rotor } from './domain/rotor.js';
import { openStore } from './store/open.js';

/** Opens the configured store and composes the domain: what `serve` and every CLI command start from. */
export async function openRotor(options: {
  config?: Config; clock?: Clock; observer?: Observer; logger?: Logger;
} = {}): Promise<{ rotor: Rotor; config: Config }> {
  const config = options.config ?? loadConfig();
  const masterKey = loadMasterKey(config);
  const store = await openStore(config);
  const rotor = new Rotor({
    store, masterKey, clock: options.clock ?? systemClock, issuer: config.issuer, observer: options.observer ?? silentObserver,
  });
  return { rotor, config };
}
