/**
 * DPoP (RFC 9449): one non-extractable ES256 key per `storageKey`, kept in IndexedDB so that every tab,
 * worker and reload of the origin proves with the same key (in memory outside browsers), and the proofs
 * it signs.
 */
import { RotorClientError } from './errors.js';
import { isWebContext } from './state.js';

/** The key of one `storageKey`: the non-extractable pair, its public JWK and its RFC 7638 thumbprint. */
export interface DpopKey {
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

export function webCrypto(): { subtle: SubtleCrypto; getRandomValues: Crypto['getRandomValues'] } | null {
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
export function boundJktOf(token: string | undefined): string | undefined {
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
export function htuOf(url: string): string {
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

/** The DPoP key of one `storageKey`, made or loaded once (again after a failure), and the proofs it signs. */
export class DpopProver {
  private keyPromise: Promise<DpopKey> | null = null;

  constructor(private readonly name: string) {}

  /**
   * This origin's key for `storageKey`: from IndexedDB (made and stored there by whichever context came
   * first), or, where there is no IndexedDB outside a browser, one per process.
   */
  key(): Promise<DpopKey> {
    this.keyPromise ??= this.load().catch((err: unknown) => {
      this.keyPromise = null; // try again next time
      throw err instanceof RotorClientError ? err : new RotorClientError('refused', `the DPoP key could not be made or loaded: ${String(err)}`, { code: 'dpop_key_unavailable', cause: err });
    });
    return this.keyPromise;
  }

  private async load(): Promise<DpopKey> {
    const crypto = webCrypto();
    if (!crypto) throw new RotorClientError('refused', 'dpop: true needs WebCrypto (crypto.subtle)', { code: 'dpop_key_unavailable' });
    const factory = indexedDbFactory();
    if (factory) {
      try {
        return await sharedDpopKey(factory, crypto.subtle, this.name);
      } catch (err) {
        // In a browser a key of this tab alone would not be the key of the others: refuse rather than diverge.
        if (isWebContext()) throw new RotorClientError('refused', `dpop: true needs IndexedDB to share its key across tabs, and it failed: ${String(err)}`, { code: 'dpop_key_unavailable', cause: err });
      }
    } else if (isWebContext()) {
      throw new RotorClientError('refused', 'dpop: true needs IndexedDB to share its key across tabs, and this context has none', { code: 'dpop_key_unavailable' });
    }
    let key = memoryKeys.get(this.name);
    if (!key) {
      key = generateDpopKey(crypto.subtle);
      memoryKeys.set(this.name, key);
      key.catch(() => memoryKeys.delete(this.name));
    }
    return key;
  }

  /** A DPoP proof JWT (RFC 9449 §4.2): fresh `jti`, `iat` now, this request's `htm` and `htu`. */
  async proof(htm: string, htu: string, extra: { nonce?: string; ath?: string }): Promise<string> {
    const key = await this.key();
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

  /** RFC 9449 §4.2: the `ath` of a proof that accompanies `token`, its SHA-256 in base64url. */
  async ath(token: string): Promise<string> {
    const crypto = webCrypto() as NonNullable<ReturnType<typeof webCrypto>>;
    return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(token))));
  }
}
