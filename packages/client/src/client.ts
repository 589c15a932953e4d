/**
 * The client of one `storageKey`: the public calls, the shared state (read, committed, observed), and
 * the refresh — single-flight in this context, under the cross-tab lock, with the state re-read under it.
 */
import { DpopProver } from './dpop.js';
import { RotorClientError } from './errors.js';
import { CrossTabLock, type Hold } from './lock.js';
import { isTokenPair } from './pair.js';
import { isWebContext, memoryStorage, type Message, newer, parse, randomId, sleep, type Stored, webLocks, windowStorage } from './state.js';
import { Transport } from './transport.js';
import type { RotorClient, RotorClientOptions, RotorEvent, SessionInfo, SignedOutReason, StorageLike, TokenPair } from './types.js';

/** The holder keeps the lock this long after writing, so that storage reaches the next holder before it does. */
const SETTLE_AFTER_WRITE_MS = 40;

export class Client implements RotorClient {
  private readonly key: string;
  private readonly storage: StorageLike;
  private readonly marginMs: number;
  private readonly prover: DpopProver | null;
  private readonly transport: Transport;
  private readonly lock: CrossTabLock;
  private readonly listeners = new Set<(event: RotorEvent) => void>();
  private readonly channel: BroadcastChannel | null = null;
  private readonly cleanups: (() => void)[] = [];
  /** The newest state another context announced (a worker cannot write localStorage). */
  private heard: Stored | null = null;
  private lastEmitted: { gen: number; rev: string } = { gen: -1, rev: '' };
  private inFlight: Promise<Stored> | null = null;

  constructor(options: RotorClientOptions) {
    const base = options.baseUrl.replace(/\/+$/, '');
    this.key = options.storageKey ?? 'rotor';
    const local = windowStorage();
    const choice = options.storage ?? (local ? 'local' : 'memory');
    if (choice === 'local' && !local) throw new TypeError('createRotorClient: storage "local" needs window.localStorage; use "memory" or a Storage-like object');
    this.storage = choice === 'local' ? (local as Storage) : choice === 'memory' ? memoryStorage() : choice;
    this.marginMs = Math.max(0, options.refreshMarginSeconds ?? 30) * 1000;
    const globalFetch = (globalThis as { fetch?: typeof fetch }).fetch;
    this.prover = options.dpop === true ? new DpopProver(this.key) : null;
    this.transport = new Transport({
      base,
      fetch: options.fetch ?? ((input, init) => (globalFetch as typeof fetch)(input, init)),
      timeoutMs: options.requestTimeoutMs ?? 5000,
      retries: Math.max(0, options.retries ?? 3),
      prover: this.prover,
    });
    // Load (or make) the key now, so that the first refresh does not wait for it.
    if (this.prover) void this.prover.key().catch(() => undefined);
    // Contexts of one origin coordinate in browsers and workers, or wherever they are given one storage.
    let locks: LockManager | null = null;
    if (isWebContext() || typeof choice === 'object') {
      locks = webLocks();
      const Channel = (globalThis as { BroadcastChannel?: typeof BroadcastChannel }).BroadcastChannel;
      if (Channel) {
        const channel = new Channel(this.key);
        channel.onmessage = (event: MessageEvent<Message>) => this.onMessage(event.data);
        (channel as unknown as { unref?: () => void }).unref?.();
        this.channel = channel;
        this.cleanups.push(() => channel.close());
      }
    }
    this.lock = new CrossTabLock({
      name: this.key, storage: this.storage, shared: choice !== 'memory', lockTimeoutMs: options.lockTimeoutMs ?? 3000,
      id: randomId(), channel: this.channel, locks,
    });
    const g = globalThis as { addEventListener?: (t: string, f: (e: StorageEvent) => void) => void; removeEventListener?: (t: string, f: (e: StorageEvent) => void) => void };
    if (choice === 'local' && g.addEventListener) {
      const onStorage = (event: StorageEvent) => {
        if (event.key === this.key) this.observe(parse(event.newValue));
        else if (event.key === this.lock.leaseKey || event.key === this.lock.beatKey) this.lock.lastBeat = Date.now();
      };
      g.addEventListener('storage', onStorage);
      this.cleanups.push(() => g.removeEventListener?.('storage', onStorage));
    }
  }

  // ---- public API ----

  setSession(pair: TokenPair): Promise<void> {
    if (!isTokenPair(pair)) {
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
    if (res.status === 401 && this.transport.nonceChallenged(request, res)) res = await this.send(request, token);
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
    await this.lock.withLock(async () => {
      const state = await this.read();
      if (state && state.by !== 'signed_out') {
        const token = state.refreshToken || state.accessToken;
        try {
          await this.transport.post('/v1/revoke', { token });
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
    if (!this.prover) throw new RotorClientError('refused', 'dpopJkt() needs a client created with dpop: true');
    return (await this.prover.key()).jkt;
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
    if (state.dpopNonce) this.transport.nonce = state.dpopNonce;
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
    this.lock.lastBeat = Date.now();
    if (message.type === 'state' && message.state?.v === 1) {
      this.heard = newer(this.heard, message.state);
      this.observe(message.state);
    }
  }

  // ---- refresh ----

  /** Single-flight in this context; the lock across contexts; the shared state re-read under the lock. */
  private refresh(seen: Stored): Promise<Stored> {
    this.inFlight ??= this.lock.withLock((hold) => this.refreshLocked(seen, hold)).finally(() => {
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
      ({ pair, nonce } = await this.transport.redeem(current.refreshToken, hold, this.transport.nonce ?? current.dpopNonce));
    } catch (caught) {
      const latest = await this.read();
      // Someone moved the session on meanwhile (this context's lock was taken from it): theirs stands.
      if (latest && latest.gen > current.gen) return this.usable(latest);
      const err = await this.transport.boundElsewhere(caught, current.accessToken);
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

  /** The request with the token, in the scheme the stored pair names (`Bearer`, or `DPoP` with a proof). */
  private async send(request: Request, token: string): Promise<Response> {
    const state = await this.read();
    return this.transport.send(request, token, state?.tokenType ?? 'Bearer');
  }
}
