/**
 * @rotor/client — Rotor's browser and JavaScript client (SPEC §9). One ES module, no dependencies.
 *
 * One refresh per expiry across every tab and worker of an origin: a refresh is single-flight inside a
 * context, serialised across contexts by a Web Lock named after `storageKey`, and whoever takes the lock
 * first re-reads the shared state: if another context refreshed meanwhile, it uses that pair instead of
 * presenting a consumed token. The winner writes the new pair to storage and announces it on a
 * BroadcastChannel. A lock holder that stops answering (a frozen tab) is detected by its silence — it
 * beats every second while it holds the lock — and the lock is stolen from it; a tab that closes
 * releases its Web Lock by itself. Without Web Locks, a lease kept in the shared storage stands in for
 * the lock; without shared storage (Node, React Native with memory storage) the client coordinates
 * only itself. With `dpop: true` every refresh carries a DPoP proof (RFC 9449) by one non-extractable
 * ES256 key per `storageKey`, kept in IndexedDB so that every tab, worker and reload of the origin
 * proves with the same key. docs/client.md has the whole story.
 */

// The package's one entry point: the public types and createRotorClient; the parts live beside it
// (client, lock, state, transport, dpop) and `npm run build` bundles them into one ES module.
import { Client } from './client.js';
import { webCrypto } from './dpop.js';
import type { RotorClient, RotorClientOptions } from './types.js';

export { RotorClientError, type RotorClientErrorKind } from './errors.js';
export type { RotorClient, RotorClientOptions, RotorEvent, SessionInfo, SignedOutReason, StorageLike, TokenPair } from './types.js';

export function createRotorClient(options: RotorClientOptions): RotorClient {
  if (!options || typeof options.baseUrl !== 'string' || !/^https?:\/\//i.test(options.baseUrl)) {
    throw new TypeError('createRotorClient: baseUrl must be an http(s) URL, e.g. https://auth.example.com');
  }
  if (options.dpop && !webCrypto()) {
    throw new TypeError('createRotorClient: dpop: true needs WebCrypto (crypto.subtle), which browsers offer only in secure contexts (https:, or http://localhost); Node 20+ has it; in React Native install a WebCrypto polyfill with ECDSA P-256 or leave dpop off');
  }
  return new Client(options);
}
