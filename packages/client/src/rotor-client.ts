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

export interface TokenPair {
  accessToken: string;
  tokenType?: string;
  expiresIn: number;
  refreshToken?: string | null;
  refreshExpiresIn?: number | null;
  sessionId?: string;
}

/** Why a session ended: the server's reason (`reused`, `revoked`, `expired`, `subject_disabled`), `invalid` (an unknown, malformed or foreign token), or `signed_out` (signOut()). */
export type SignedOutReason = 'reused' | 'revoked' | 'expired' | 'subject_disabled' | 'invalid' | 'signed_out';

export type RotorEvent = { type: 'signed_in' } | { type: 'refreshed' } | { type: 'signed_out'; reason: SignedOutReason };

/**
 * `no_session`: nothing was set. `signed_out`: the session ended (`reason`). `transient`: Rotor could not
 * be reached or answered 5xx/429, retries included; the session is kept, try again later. `refused`:
 * Rotor refused the call for a reason that does not end the session (a configuration or client error).
 */
export type RotorClientErrorKind = 'no_session' | 'signed_out' | 'transient' | 'refused';

export class RotorClientError extends Error {
  override readonly name = 'RotorClientError';
  constructor(
    readonly kind: RotorClientErrorKind,
    message: string,
    readonly details: { reason?: string; status?: number; code?: string; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message);
  }
  get reason(): string | undefined {
    return this.details.reason;
  }
  get status(): number | undefined {
    return this.details.status;
  }
}

/** `localStorage` and anything shaped like it; the methods may also return promises (React Native's AsyncStorage). */
export interface StorageLike {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

export interface RotorClientOptions {
  /** The Rotor server, e.g. `https://auth.example.com`. */
  baseUrl: string;
  /** Names the storage entry, the cross-tab lock and the channel. Default `rotor`. */
  storageKey?: string;
  /** `local` (default in windows), `memory` (default elsewhere) or a Storage-like object. */
  storage?: 'local' | 'memory' | StorageLike;
  /** Refresh this long before the access token expires (at most half its lifetime). Default 30. */
  refreshMarginSeconds?: number;
  /**
   * Sender-constrained sessions (DPoP, RFC 9449): a non-extractable ES256 key (IndexedDB in browsers,
   * memory elsewhere) proves every refresh, and `fetch()` proves every request made with a DPoP token.
   * Needs WebCrypto (`crypto.subtle`: a secure context in browsers). Default false.
   */
  dpop?: boolean;
  /** Retries of a refresh after a transient failure (network, 5xx, 429). Default 3. */
  retries?: number;
  /** Each request to Rotor is abandoned after this long. Default 5000. */
  requestTimeoutMs?: number;
  /** A lock holder silent this long is presumed frozen and its lock is taken. Default 3000. */
  lockTimeoutMs?: number;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
}

export interface SessionInfo {
  sessionId: string | undefined;
  /** Epoch milliseconds, by this device's clock. */
  accessTokenExpiresAt: number;
  refreshTokenExpiresAt: number | null;
}

export interface RotorClient {
  /** Hands the client a TokenPair your backend got from `POST /v1/apps/{app}/sessions`; every tab sees it. */
  setSession(pair: TokenPair): Promise<void>;
  /** A valid access token, refreshed first when it is within the margin of its expiry. */
  getAccessToken(): Promise<string>;
  /**
   * fetch with `Authorization: Bearer <access token>` (or `DPoP <access token>` and a `DPoP` proof for a
   * DPoP-bound token); on a 401, refreshes once and retries once.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Called in every tab when the session is set, refreshed or ends. Returns the unsubscribe function. */
  onChange(listener: (event: RotorEvent) => void): () => void;
  /** Revokes the session at Rotor (best effort) and signs every tab out. */
  signOut(): Promise<void>;
  /** The session as stored, or null when there is none. */
  getSession(): Promise<SessionInfo | null>;
  /** The RFC 7638 thumbprint of this origin's DPoP key, for `dpopJkt` at issuance (needs `dpop: true`). */
  dpopJkt(): Promise<string>;
  /** Stops listening to other tabs (for tests and single-page-app teardown). */
  close(): void;
}

/** What is stored under `storageKey`. `gen` grows by one with every change, across all contexts. */
interface Stored {
  v: 1;
  gen: number;
  rev: string;
  by: 'set' | 'refresh' | 'signed_out';
  accessToken?: string;
  tokenType?: string;
  refreshToken?: string | null;
  sessionId?: string;
  receivedAt?: number;
  accessExpiresAt?: number;
  refreshExpiresAt?: number | null;
  reason?: SignedOutReason;
  /** The latest `DPoP-Nonce` Rotor sent with a pair, for the next holder's first proof. */
  dpopNonce?: string;
}

type Message = { type: 'state'; state: Stored } | { type: 'beat' };
interface Lease { owner: string; until: number }
interface Hold { lost: boolean }

const HEARTBEAT_MS = 1000;
/** The holder keeps the lock this long after writing, so that storage reaches the next holder before it does. */
const SETTLE_AFTER_WRITE_MS = 40;
/** Lease lock: how long a writer waits before believing its lease won. */
const LEASE_SETTLE_MS = 120;
const LEASE_POLL_MS = 100;
/**
 * Retries of one refresh stop this long after its first attempt: inside Rotor's default 10 s grace
 * window, so that a retry after a lost answer gets the same successor instead of being taken for reuse.
 */
const RETRY_WINDOW_MS = 8000;
const TERMINAL: Record<string, SignedOutReason> = {
  reused: 'reused', revoked: 'revoked', expired: 'expired', subject_disabled: 'subject_disabled',
  unknown: 'invalid', malformed: 'invalid', wrong_app: 'invalid', binding_mismatch: 'invalid', subject_not_found: 'invalid',
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const randomId = () => Math.random().toString(36).slice(2) + Date.now().toString(36);

function memoryStorage(): StorageLike {
  const map = new Map<string, string>();
  return { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v), removeItem: (k) => void map.delete(k) };
}

/** `window.localStorage`, when there is a window and it can be used (sandboxed frames and some private modes throw). */
function windowStorage(): Storage | null {
  try {
    const g = globalThis as { window?: { localStorage?: Storage } };
    return g.window?.localStorage ?? null;
  } catch {
    return null;
  }
}

/** A browser window or worker (not Node, not React Native): there, contexts of one origin coordinate. */
function isWebContext(): boolean {
  const g = globalThis as { window?: unknown; document?: unknown; importScripts?: unknown; WorkerGlobalScope?: unknown };
  return (g.window !== undefined && g.document !== undefined) || typeof g.importScripts === 'function' || g.WorkerGlobalScope !== undefined;
}

function webLocks(): LockManager | null {
  const nav = (globalThis as { navigator?: { locks?: LockManager } }).navigator;
  return nav?.locks && typeof nav.locks.request === 'function' ? nav.locks : null;
}

function parse(text: string | null | undefined): Stored | null {
  if (!text) return null;
  try {
    const value = JSON.parse(text) as Stored;
    return value && value.v === 1 && typeof value.gen === 'number' ? value : null;
  } catch {
    return null;
  }
}

const newer = (a: Stored | null, b: Stored | null): Stored | null => (!a ? b : !b ? a : b.gen > a.gen ? b : a);

// ---- DPoP (RFC 9449) ----

/** The key of one `storageKey`: the non-extractable pair, its public JWK and its RFC 7638 thumbprint. */
interface DpopKey {
  v: 1;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: { crv: string; kty: string; x: string; y: string };
  jkt: string;
  createdAt: number;
}

/** Where browsers keep the keys: database `rotor-dpop`, object store `keys`, one record per storageKey. */
const DPOP_DB = 'rotor-dpop';
const DPOP_STORE = 'keys';
/** Without IndexedDB (Node, React Native): one key per storageKey for the life of the process. */
const memoryKeys = new Map<string, Promise<DpopKey>>();

function webCrypto(): { subtle: SubtleCrypto; getRandomValues: Crypto['getRandomValues'] } | null {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  return c && c.subtle && typeof c.subtle.generateKey === 'function' && typeof c.subtle.sign === 'function' && typeof c.getRandomValues === 'function'
    ? { subtle: c.subtle, getRandomValues: (array) => c.getRandomValues(array) }
    : null;
}

function indexedDbFactory(): IDBFactory | null {
  try {
    return (globalThis as { indexedDB?: IDBFactory }).indexedDB ?? null;
  } catch {
    return null; // some sandboxed frames throw on access
  }
}

const utf8 = (text: string) => new TextEncoder().encode(text);

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i] as number);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The `cnf.jkt` an access token names (read, not verified: only to tell whose key a session is bound to). */
function boundJktOf(token: string | undefined): string | undefined {
  try {
    const part = (token ?? '').split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4));
    const jkt = (JSON.parse(json) as { cnf?: { jkt?: unknown } }).cnf?.jkt;
    return typeof jkt === 'string' ? jkt : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 9449 §4.2: the URI of a request without its query and fragment. */
function htuOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

function isDpopKey(value: unknown): value is DpopKey {
  const k = value as DpopKey | undefined;
  return !!k && k.v === 1 && typeof k.jkt === 'string' && !!k.privateKey && !!k.publicKey && !!k.jwk;
}

async function generateDpopKey(subtle: SubtleCrypto): Promise<DpopKey> {
  // Non-extractable: the private key can sign, and nothing — no script of the origin either — can read it.
  const pair = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])) as CryptoKeyPair;
  const exported = await subtle.exportKey('jwk', pair.publicKey); // a public key is always exportable
  const jwk = { crv: String(exported.crv), kty: String(exported.kty), x: String(exported.x), y: String(exported.y) };
  // RFC 7638: the required members, in lexicographic order, no whitespace.
  const canonical = `{"crv":${JSON.stringify(jwk.crv)},"kty":${JSON.stringify(jwk.kty)},"x":${JSON.stringify(jwk.x)},"y":${JSON.stringify(jwk.y)}}`;
  const jkt = base64url(new Uint8Array(await subtle.digest('SHA-256', utf8(canonical))));
  return { v: 1, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk, jkt, createdAt: Date.now() };
}

function openKeyDb(factory: IDBFactory): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = factory.open(DPOP_DB, 1);
    request.onupgradeneeded = () => {
      if (!request.result.objectStoreNames.contains(DPOP_STORE)) request.result.createObjectStore(DPOP_STORE);
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB could not be opened'));
  });
}

/**
 * The stored key of `name`; with a `candidate`, in one readwrite transaction: the stored key if there is
 * one, else the candidate, stored. Readwrite transactions on one store run one at a time, so tabs that
 * generate at once all end with the key of whichever stored first.
 */
function keyRecord(db: IDBDatabase, name: string, candidate?: DpopKey): Promise<DpopKey | undefined> {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(DPOP_STORE, candidate ? 'readwrite' : 'readonly');
    const store = tx.objectStore(DPOP_STORE);
    let result: DpopKey | undefined;
    const get = store.get(name);
    get.onsuccess = () => {
      if (isDpopKey(get.result)) result = get.result;
      else if (candidate) {
        store.put(candidate, name);
        result = candidate;
      }
    };
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

async function sharedDpopKey(factory: IDBFactory, subtle: SubtleCrypto, name: string): Promise<DpopKey> {
  const db = await openKeyDb(factory);
  try {
    return (await keyRecord(db, name)) ?? ((await keyRecord(db, name, await generateDpopKey(subtle))) as DpopKey);
  } finally {
    db.close();
  }
}

export function createRotorClient(options: RotorClientOptions): RotorClient {
  if (!options || typeof options.baseUrl !== 'string' || !/^https?:\/\//i.test(options.baseUrl)) {
    throw new TypeError('createRotorClient: baseUrl must be an http(s) URL, e.g. https://auth.example.com');
  }
  if (options.dpop && !webCrypto()) {
    throw new TypeError('createRotorClient: dpop: true needs WebCrypto (crypto.subtle), which browsers offer only in secure contexts (https:, or http://localhost); Node 20+ has it; in React Native install a WebCrypto polyfill with ECDSA P-256 or leave dpop off');
  }
  return new Client(options);
}

class Client implements RotorClient {
  private readonly base: string;
  private readonly key: string;
  private readonly leaseKey: string;
  private readonly beatKey: string;
  private readonly storage: StorageLike;
  /** Whether other contexts read the same storage (localStorage, or a Storage-like object given). */
  private readonly shared: boolean;
  private readonly marginMs: number;
  private readonly retries: number;
  private readonly timeoutMs: number;
  private readonly lockTimeoutMs: number;
  private readonly doFetch: typeof fetch;
  private readonly dpop: boolean;
  private readonly refreshUrl: string;
  private dpopKeyPromise: Promise<DpopKey> | null = null;
  /** The latest `DPoP-Nonce` Rotor sent (RFC 9449 §8), from any answer or any context's stored pair. */
  private nonce: string | undefined;
  /** Nonces resource servers asked for (RFC 9449 §9), by origin. */
  private readonly resourceNonces = new Map<string, string>();
  private readonly id = randomId();
  private readonly listeners = new Set<(event: RotorEvent) => void>();
  private readonly channel: BroadcastChannel | null = null;
  private readonly locks: LockManager | null = null;
  private readonly cleanups: (() => void)[] = [];
  /** The newest state another context announced (a worker cannot write localStorage). */
  private heard: Stored | null = null;
  private lastBeat = 0;
  private lastEmitted: { gen: number; rev: string } = { gen: -1, rev: '' };
  private inFlight: Promise<Stored> | null = null;
  private localQueue: Promise<unknown> = Promise.resolve();

  constructor(options: RotorClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.key = options.storageKey ?? 'rotor';
    this.leaseKey = `${this.key}:lock`;
    this.beatKey = `${this.key}:beat`;
    const local = windowStorage();
    const choice = options.storage ?? (local ? 'local' : 'memory');
    if (choice === 'local' && !local) throw new TypeError('createRotorClient: storage "local" needs window.localStorage; use "memory" or a Storage-like object');
    this.storage = choice === 'local' ? (local as Storage) : choice === 'memory' ? memoryStorage() : choice;
    this.shared = choice !== 'memory';
    this.marginMs = Math.max(0, options.refreshMarginSeconds ?? 30) * 1000;
    this.retries = Math.max(0, options.retries ?? 3);
    this.timeoutMs = options.requestTimeoutMs ?? 5000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 3000;
    const globalFetch = (globalThis as { fetch?: typeof fetch }).fetch;
    this.doFetch = options.fetch ?? ((input, init) => (globalFetch as typeof fetch)(input, init));
    this.dpop = options.dpop === true;
    this.refreshUrl = htuOf(`${this.base}/v1/refresh`);
    // Load (or make) the key now, so that the first refresh does not wait for it.
    if (this.dpop) void this.dpopKey().catch(() => undefined);
    // Contexts of one origin coordinate in browsers and workers, or wherever they are given one storage.
    if (isWebContext() || typeof choice === 'object') {
      this.locks = webLocks();
      const Channel = (globalThis as { BroadcastChannel?: typeof BroadcastChannel }).BroadcastChannel;
      if (Channel) {
        const channel = new Channel(this.key);
        channel.onmessage = (event: MessageEvent<Message>) => this.onMessage(event.data);
        (channel as unknown as { unref?: () => void }).unref?.();
        this.channel = channel;
        this.cleanups.push(() => channel.close());
      }
    }
    const g = globalThis as { addEventListener?: (t: string, f: (e: StorageEvent) => void) => void; removeEventListener?: (t: string, f: (e: StorageEvent) => void) => void };
    if (choice === 'local' && g.addEventListener) {
      const onStorage = (event: StorageEvent) => {
        if (event.key === this.key) this.observe(parse(event.newValue));
        else if (event.key === this.leaseKey || event.key === this.beatKey) this.lastBeat = Date.now();
      };
      g.addEventListener('storage', onStorage);
      this.cleanups.push(() => g.removeEventListener?.('storage', onStorage));
    }
  }

  // ---- public API ----

  setSession(pair: TokenPair): Promise<void> {
    if (!pair || typeof pair.accessToken !== 'string' || typeof pair.expiresIn !== 'number') {
      return Promise.reject(new TypeError('setSession: expected a TokenPair {accessToken, expiresIn, refreshToken, …}'));
    }
    const store = (text: string | null) => {
      const current = newer(parse(text), this.heard);
      return this.commit(this.fromPair(pair, 'set', (current?.gen ?? 0) + 1));
    };
    // With a synchronous storage (localStorage) the pair is written before setSession returns, so a
    // getAccessToken() right after it, awaited or not, finds it.
    const text = this.storage.getItem(this.key);
    return typeof text === 'string' || text === null ? store(text) : text.then(store);
  }

  async getAccessToken(): Promise<string> {
    const state = this.usable(await this.read());
    if (this.fresh(state)) return state.accessToken as string;
    return (await this.refresh(state)).accessToken as string;
  }

  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    const token = await this.getAccessToken();
    let res = await this.send(request, token);
    // A resource server that asks for a DPoP nonce (RFC 9449 §9) gets the same request once more with it.
    if (res.status === 401 && this.nonceChallenged(request, res)) res = await this.send(request, token);
    if (res.status !== 401) return res;
    // Refresh once — unless another tab already did since this token was read — and retry once.
    const state = this.usable(await this.read());
    const next = state.accessToken !== token && this.fresh(state) ? state : await this.refresh(state);
    return this.send(request, next.accessToken as string);
  }

  onChange(listener: (event: RotorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async signOut(): Promise<void> {
    await this.withLock(async () => {
      const state = await this.read();
      if (state && state.by !== 'signed_out') {
        const token = state.refreshToken || state.accessToken;
        try {
          await this.post('/v1/revoke', { token });
        } catch {
          // Best effort: the tokens are dropped here whatever Rotor answers (docs/client.md).
        }
      }
      await this.endLocally('signed_out', state);
    });
  }

  async getSession(): Promise<SessionInfo | null> {
    const state = await this.read();
    if (!state || state.by === 'signed_out') return null;
    return { sessionId: state.sessionId, accessTokenExpiresAt: state.accessExpiresAt ?? 0, refreshTokenExpiresAt: state.refreshExpiresAt ?? null };
  }

  async dpopJkt(): Promise<string> {
    if (!this.dpop) throw new RotorClientError('refused', 'dpopJkt() needs a client created with dpop: true');
    return (await this.dpopKey()).jkt;
  }

  close(): void {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.listeners.clear();
  }

  // ---- state ----

  private async read(): Promise<Stored | null> {
    return newer(parse(await this.storage.getItem(this.key)), this.heard);
  }

  /** Writes a new state, tells the other contexts, and tells this one's listeners. */
  private async commit(state: Stored): Promise<void> {
    await this.storage.setItem(this.key, JSON.stringify(state));
    this.channel?.postMessage({ type: 'state', state } satisfies Message);
    this.observe(state);
  }

  private fromPair(pair: TokenPair, by: 'set' | 'refresh', gen: number): Stored {
    const now = Date.now();
    return {
      v: 1, gen, rev: randomId(), by,
      accessToken: pair.accessToken, tokenType: pair.tokenType ?? 'Bearer', refreshToken: pair.refreshToken ?? null, sessionId: pair.sessionId,
      receivedAt: now, accessExpiresAt: now + pair.expiresIn * 1000,
      refreshExpiresAt: typeof pair.refreshExpiresIn === 'number' ? now + pair.refreshExpiresIn * 1000 : null,
    };
  }

  private async endLocally(reason: SignedOutReason, current: Stored | null): Promise<void> {
    await this.commit({ v: 1, gen: (current?.gen ?? 0) + 1, rev: randomId(), by: 'signed_out', reason });
  }

  /** A state that can yield a token, or the error that says why not. */
  private usable(state: Stored | null): Stored {
    if (!state) throw new RotorClientError('no_session', 'no session: call setSession() with the TokenPair your backend issued');
    if (state.by === 'signed_out') {
      throw new RotorClientError('signed_out', `the session has ended (${state.reason ?? 'signed_out'})`, { reason: state.reason ?? 'signed_out' });
    }
    return state;
  }

  /** Valid for longer than the margin (at most half the token's lifetime, so short tokens are not refreshed on every call). */
  private fresh(state: Stored): boolean {
    const expires = state.accessExpiresAt ?? 0;
    const margin = Math.min(this.marginMs, (expires - (state.receivedAt ?? expires)) / 2);
    return Date.now() < expires - margin;
  }

  private observe(state: Stored | null): void {
    if (!state || (state.gen === this.lastEmitted.gen && state.rev === this.lastEmitted.rev) || state.gen < this.lastEmitted.gen) return;
    if (state.dpopNonce) this.nonce = state.dpopNonce;
    this.lastEmitted = { gen: state.gen, rev: state.rev };
    const event: RotorEvent = state.by === 'signed_out'
      ? { type: 'signed_out', reason: state.reason ?? 'signed_out' }
      : state.by === 'set' ? { type: 'signed_in' } : { type: 'refreshed' };
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // A listener's error is its own.
      }
    }
  }

  private onMessage(message: Message): void {
    if (!message || typeof message !== 'object') return;
    this.lastBeat = Date.now();
    if (message.type === 'state' && message.state?.v === 1) {
      this.heard = newer(this.heard, message.state);
      this.observe(message.state);
    }
  }

  // ---- refresh ----

  /** Single-flight in this context; the lock across contexts; the shared state re-read under the lock. */
  private refresh(seen: Stored): Promise<Stored> {
    this.inFlight ??= this.withLock((hold) => this.refreshLocked(seen, hold)).finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async refreshLocked(seen: Stored, hold: Hold): Promise<Stored> {
    const current = this.usable(await this.read());
    // Another context refreshed (or set a new session) while this one waited: use its pair.
    if (current.gen > seen.gen && current.accessToken !== seen.accessToken && Date.now() < (current.accessExpiresAt ?? 0)) return current;
    if (!current.refreshToken) {
      if (Date.now() < (current.accessExpiresAt ?? 0)) return current;
      await this.endLocally('expired', current);
      throw new RotorClientError('signed_out', 'the access token expired and this session has no refresh token', { reason: 'expired' });
    }
    let pair: TokenPair;
    let nonce: string | undefined;
    try {
      ({ pair, nonce } = await this.redeem(current.refreshToken, hold, this.nonce ?? current.dpopNonce));
    } catch (caught) {
      const latest = await this.read();
      // Someone moved the session on meanwhile (this context's lock was taken from it): theirs stands.
      if (latest && latest.gen > current.gen) return this.usable(latest);
      const err = await this.boundElsewhere(caught, current);
      if (err instanceof RotorClientError && err.kind === 'signed_out') await this.endLocally(err.reason as SignedOutReason, current);
      throw err;
    }
    const latest = await this.read();
    if (latest && latest.gen > current.gen) return this.usable(latest);
    const next = this.fromPair(pair, 'refresh', current.gen + 1);
    if (nonce) next.dpopNonce = nonce;
    await this.commit(next);
    await sleep(SETTLE_AFTER_WRITE_MS);
    return next;
  }

  /**
   * POST /v1/refresh, retrying transient failures with backoff (and Retry-After). With DPoP, every
   * attempt carries a fresh proof, and a `use_dpop_nonce` refusal is retried once with Rotor's nonce.
   */
  private async redeem(refreshToken: string, hold: Hold, nonceSeed: string | undefined): Promise<{ pair: TokenPair; nonce: string | undefined }> {
    const first = Date.now();
    let nonce = nonceSeed;
    let nonceRetried = false;
    for (let attempt = 0; ; attempt += 1) {
      if (hold.lost && attempt > 0) throw new RotorClientError('transient', 'the refresh lock was taken over by another tab');
      const headers: Record<string, string> = this.dpop ? { DPoP: await this.proof('POST', this.refreshUrl, { nonce }) } : {};
      let failure: RotorClientError;
      try {
        const res = await this.post('/v1/refresh', { refreshToken }, headers);
        const offered = res.headers.get('dpop-nonce') ?? undefined;
        if (offered) nonce = this.nonce = offered;
        if (res.ok) return { pair: (await res.json()) as TokenPair, nonce: offered };
        failure = await this.failureOf(res);
        if (failure.details.code === 'use_dpop_nonce' && this.dpop && offered && !nonceRetried) {
          nonceRetried = true;
          attempt -= 1; // not a failure: the same attempt, now with the nonce
          continue;
        }
      } catch (err) {
        failure = err instanceof RotorClientError ? err : new RotorClientError('transient', 'Rotor could not be reached', { cause: err });
      }
      if (failure.kind !== 'transient' || attempt >= this.retries) throw failure;
      const backoff = Math.min(4000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
      const wait = failure.details.retryAfter !== undefined ? failure.details.retryAfter * 1000 : backoff;
      if (Date.now() + wait - first > RETRY_WINDOW_MS) throw failure;
      await sleep(wait);
    }
  }

  /** Rotor's problem+json answer as a typed error: terminal reasons end the session, 5xx/429 are transient. */
  private async failureOf(res: Response): Promise<RotorClientError> {
    let problem: { code?: unknown; detail?: unknown } = {};
    try {
      problem = (await res.json()) as typeof problem;
    } catch {
      // not JSON: judged by its status
    }
    const code = typeof problem.code === 'string' ? problem.code : undefined;
    const detail = typeof problem.detail === 'string' ? problem.detail : undefined;
    const retryAfter = Number(res.headers.get('retry-after'));
    if (res.status === 429 || res.status >= 500) {
      return new RotorClientError('transient', `Rotor answered ${res.status}`, { status: res.status, code, retryAfter: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined });
    }
    const reason = code === 'subject_disabled' ? 'subject_disabled' : code === 'invalid_refresh_token' && detail ? TERMINAL[detail] : undefined;
    if (reason) return new RotorClientError('signed_out', `the session has ended (${reason})`, { status: res.status, code, reason });
    const hint = code === 'invalid_dpop_proof' && !this.dpop ? ': the session is bound to a DPoP key; create the client with dpop: true' : '';
    return new RotorClientError('refused', `Rotor refused the refresh: ${code ?? res.status}${detail ? ` (${detail})` : ''}${hint}`, { status: res.status, code, reason: detail });
  }

  /**
   * An `invalid_dpop_proof` for a session bound to another key than this origin's (its access token
   * names another `cnf.jkt`, or Rotor says so) can never be refreshed here: the session is over for this
   * client (`invalid`). Any other refusal (a clock far off, a wrong baseUrl) keeps the session.
   */
  private async boundElsewhere(err: unknown, current: Stored): Promise<unknown> {
    if (!this.dpop || !(err instanceof RotorClientError) || err.details.code !== 'invalid_dpop_proof') return err;
    const bound = boundJktOf(current.accessToken);
    const ours = await this.dpopKey().then((key) => key.jkt, () => undefined);
    const elsewhere = (bound !== undefined && ours !== undefined && bound !== ours) || /bound to/.test(err.reason ?? '');
    if (!elsewhere) return err;
    return new RotorClientError('signed_out', 'the session has ended (invalid): it is bound to another DPoP key than this origin\'s', {
      status: err.status, code: 'invalid_dpop_proof', reason: 'invalid',
    });
  }

  private async post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      return await this.doFetch(`${this.base}${path}`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
        credentials: 'omit', signal: controller.signal,
      });
    } catch (err) {
      throw new RotorClientError('transient', controller.signal.aborted ? `Rotor did not answer within ${this.timeoutMs} ms` : 'Rotor could not be reached', { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The request (a copy: it may be sent again) with the token, and for a DPoP token a proof of this request. */
  private async send(request: Request, token: string): Promise<Response> {
    const state = await this.read();
    const type = state?.tokenType ?? 'Bearer';
    const headers = new Headers(request.headers);
    if (this.dpop && type.toLowerCase() === 'dpop') {
      const crypto = webCrypto() as NonNullable<ReturnType<typeof webCrypto>>;
      const ath = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(token))));
      const nonce = this.resourceNonces.get(new URL(request.url).origin);
      headers.set('Authorization', `DPoP ${token}`);
      headers.set('DPoP', await this.proof(request.method, htuOf(request.url), { nonce, ath }));
    } else {
      headers.set('Authorization', `${type} ${token}`);
    }
    const res = await this.doFetch(new Request(request.clone(), { headers }));
    const offered = res.headers.get('dpop-nonce');
    if (offered && this.dpop) this.resourceNonces.set(new URL(request.url).origin, offered);
    return res;
  }

  /** A 401 `use_dpop_nonce` from a resource server, answered with a new nonce (RFC 9449 §9). */
  private nonceChallenged(request: Request, res: Response): boolean {
    if (!this.dpop || !res.headers.get('dpop-nonce')) return false;
    return /use_dpop_nonce/.test(res.headers.get('www-authenticate') ?? '') && this.resourceNonces.has(new URL(request.url).origin);
  }

  // ---- DPoP ----

  /**
   * This origin's key for `storageKey`: from IndexedDB (made and stored there by whichever context came
   * first), or, where there is no IndexedDB outside a browser, one per process.
   */
  private dpopKey(): Promise<DpopKey> {
    this.dpopKeyPromise ??= this.loadDpopKey().catch((err: unknown) => {
      this.dpopKeyPromise = null; // try again next time
      throw err instanceof RotorClientError ? err : new RotorClientError('refused', `the DPoP key could not be made or loaded: ${String(err)}`, { code: 'dpop_key_unavailable', cause: err });
    });
    return this.dpopKeyPromise;
  }

  private async loadDpopKey(): Promise<DpopKey> {
    const crypto = webCrypto();
    if (!crypto) throw new RotorClientError('refused', 'dpop: true needs WebCrypto (crypto.subtle)', { code: 'dpop_key_unavailable' });
    const factory = indexedDbFactory();
    if (factory) {
      try {
        return await sharedDpopKey(factory, crypto.subtle, this.key);
      } catch (err) {
        // In a browser a key of this tab alone would not be the key of the others: refuse rather than diverge.
        if (isWebContext()) throw new RotorClientError('refused', `dpop: true needs IndexedDB to share its key across tabs, and it failed: ${String(err)}`, { code: 'dpop_key_unavailable', cause: err });
      }
    } else if (isWebContext()) {
      throw new RotorClientError('refused', 'dpop: true needs IndexedDB to share its key across tabs, and this context has none', { code: 'dpop_key_unavailable' });
    }
    let key = memoryKeys.get(this.key);
    if (!key) {
      key = generateDpopKey(crypto.subtle);
      memoryKeys.set(this.key, key);
      key.catch(() => memoryKeys.delete(this.key));
    }
    return key;
  }

  /** A DPoP proof JWT (RFC 9449 §4.2): fresh `jti`, `iat` now, this request's `htm` and `htu`. */
  private async proof(htm: string, htu: string, extra: { nonce?: string; ath?: string }): Promise<string> {
    const key = await this.dpopKey();
    const crypto = webCrypto() as NonNullable<ReturnType<typeof webCrypto>>;
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk };
    const payload = {
      jti: base64url(crypto.getRandomValues(new Uint8Array(16))), htm, htu, iat: Math.floor(Date.now() / 1000),
      ...(extra.nonce ? { nonce: extra.nonce } : {}), ...(extra.ath ? { ath: extra.ath } : {}),
    };
    const input = `${base64url(utf8(JSON.stringify(header)))}.${base64url(utf8(JSON.stringify(payload)))}`;
    // WebCrypto's ECDSA signature is r‖s, 64 bytes: JWS's form already (RFC 7518 §3.4).
    const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, utf8(input));
    return `${input}.${base64url(new Uint8Array(signature))}`;
  }

  // ---- the lock ----

  private withLock<T>(fn: (hold: Hold) => Promise<T>): Promise<T> {
    if (this.locks) return this.withWebLock(this.locks, fn);
    // Inside this context, one holder at a time; across contexts, a lease in the shared storage.
    const run = this.localQueue.then(() => (this.shared ? this.withLease(fn) : this.holding(fn, null)));
    this.localQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * A Web Lock. Waiters watch the holder's heartbeat: one silent for `lockTimeoutMs` (plus a random
   * part, so that waiters do not all steal at once) is frozen, and the lock is stolen from it. A holder
   * whose lock was stolen still finishes its own work, and only writes if nobody moved the session on.
   */
  private async withWebLock<T>(locks: LockManager, fn: (hold: Hold) => Promise<T>): Promise<T> {
    const start = Date.now();
    const patience = this.lockTimeoutMs + Math.random() * 1000;
    const controller = new AbortController();
    let silent = false;
    const watch = setInterval(() => {
      if (!this.channel && this.shared) void this.readBeat();
      if (Date.now() - Math.max(start, this.lastBeat) > patience) {
        silent = true;
        controller.abort();
      }
    }, 200);
    let task: Promise<T> | null = null;
    const hold: Hold = { lost: false };
    const granted = () => {
      clearInterval(watch);
      return (task = this.holding(fn, hold));
    };
    try {
      return await locks.request(this.key, { signal: controller.signal }, granted);
    } catch (err) {
      if (task) {
        hold.lost = true;
        return await task;
      }
      if (!silent) throw err;
      try {
        return await locks.request(this.key, { steal: true }, granted);
      } catch (stolen) {
        if (task) {
          hold.lost = true;
          return await task;
        }
        throw stolen;
      }
    } finally {
      clearInterval(watch);
    }
  }

  /** Fallback without Web Locks: a lease `{owner, until}` in the shared storage, renewed by the heartbeat. */
  private async withLease<T>(fn: (hold: Hold) => Promise<T>): Promise<T> {
    await sleep(Math.random() * 40);
    for (;;) {
      const lease = await this.readLease();
      if (!lease || lease.until < Date.now() || lease.owner === this.id) {
        await this.storage.setItem(this.leaseKey, JSON.stringify({ owner: this.id, until: Date.now() + this.lockTimeoutMs } satisfies Lease));
        await sleep(LEASE_SETTLE_MS);
        if ((await this.readLease())?.owner === this.id) {
          const hold: Hold = { lost: false };
          try {
            return await this.holding(fn, hold, true);
          } finally {
            if ((await this.readLease())?.owner === this.id) await this.storage.removeItem(this.leaseKey);
          }
        }
      }
      await sleep(LEASE_POLL_MS + Math.random() * 50);
    }
  }

  /** Runs the holder's work while beating: on the channel, and (lease mode) by renewing the lease. */
  private async holding<T>(fn: (hold: Hold) => Promise<T>, hold: Hold | null, lease = false): Promise<T> {
    const own = hold ?? { lost: false };
    const beat = async () => {
      if (this.channel) this.channel.postMessage({ type: 'beat' } satisfies Message);
      else if (this.shared && !lease) await this.storage.setItem(this.beatKey, String(Date.now()));
      if (lease) {
        if ((await this.readLease())?.owner !== this.id) own.lost = true;
        else await this.storage.setItem(this.leaseKey, JSON.stringify({ owner: this.id, until: Date.now() + this.lockTimeoutMs } satisfies Lease));
      }
    };
    void beat();
    const timer = setInterval(() => void beat().catch(() => undefined), HEARTBEAT_MS);
    try {
      return await fn(own);
    } finally {
      clearInterval(timer);
    }
  }

  private async readLease(): Promise<Lease | null> {
    try {
      const lease = JSON.parse((await this.storage.getItem(this.leaseKey)) ?? 'null') as Lease | null;
      return lease && typeof lease.owner === 'string' && typeof lease.until === 'number' ? lease : null;
    } catch {
      return null;
    }
  }

  /** Without a channel, a Web Lock holder beats in the shared storage. */
  private async readBeat(): Promise<void> {
    const at = Number(await this.storage.getItem(this.beatKey));
    if (Number.isFinite(at) && at > this.lastBeat) this.lastBeat = at;
  }
}
