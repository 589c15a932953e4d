import type { MasterKey } from '../../crypto/master_key.js';
import type { Store } from '../store.js';

// The engine's one import of the store port: its other modules take these names from here.
export { UPGRADED, type FoundLegacyRefresh, type FoundSession, type Store } from '../store.js';
import type { Clock } from '../clock.js';
import type { Observer } from '../events.js';
import type { FormatRegistry } from '../format_registry.js';
import type { Keyring } from '../keyring.js';
import { RefreshIds } from '../refresh_ids.js';
import type { App, Millis } from '../types.js';

/** What the engine is built from (Rotor passes its own). */
export interface EngineDeps {
  store: Store;
  keyring: Keyring;
  masterKey: MasterKey;
  clock: Clock;
  issuer: string;
  observer: Observer;
  apps: { byId(id: string): Promise<App | null> };
  formats: FormatRegistry;
}

/** The deps plus what every part of the engine derives from them once. */
export interface EngineCore extends EngineDeps {
  ids: RefreshIds;
  /** The key DPoP server nonces are MACed with. */
  nonceKey: Buffer;
  now(): Millis;
}

export function engineCore(deps: EngineDeps): EngineCore {
  return {
    ...deps,
    ids: new RefreshIds(deps.masterKey),
    nonceKey: deps.masterKey.derive('dpop-nonce'),
    now: () => deps.clock.now(),
  };
}
