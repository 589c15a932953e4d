import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { secureRandomBytes } from './random.js';

export type SealPurpose = 'signing-key' | 'refresh-successor';

/** Keys derived for a purpose rather than sealing: refresh-token MACs and id ciphers (never stored). */
export type DerivedPurpose = 'refresh-mac' | `refresh-id:${string}` | 'dpop-nonce';

/**
 * The master key encrypts private keys, HMAC secrets and grace-window successors at rest
 * (AES-256-GCM, a subkey per purpose derived with HKDF, the record's id bound as associated data).
 */
export class MasterKey {
  private readonly subkeys = new Map<SealPurpose | DerivedPurpose, Buffer>();

  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the master key must be exactly 32 bytes');
  }

  static fromBase64(text: string): MasterKey {
    const key = Buffer.from(text.trim(), 'base64');
    if (key.length !== 32) {
      throw new Error('ROTOR_MASTER_KEY must be 32 bytes, base64-encoded (generate one with: openssl rand -base64 32)');
    }
    return new MasterKey(key);
  }

  static random(): MasterKey {
    return new MasterKey(randomBytes(32));
  }

  /** Reads the key file, creating it (mode 0600, in a new directory 0700: S2-07) when absent. */
  static fromFile(path: string): MasterKey {
    if (!existsSync(path)) {
      makePrivateDir(dirname(path));
      writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    }
    chmodSync(path, 0o600);
    return MasterKey.fromBase64(readFileSync(path, 'utf8'));
  }

  /**
   * A 32-byte key for `purpose`, derived with HKDF and never stored: a database dump alone cannot mint or
   * recognise a refresh token (SPEC §2.9).
   */
  derive(purpose: DerivedPurpose): Buffer {
    return this.subkey(purpose);
  }

  private subkey(purpose: SealPurpose | DerivedPurpose): Buffer {
    let key = this.subkeys.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), `rotor/${purpose}`, 32));
      this.subkeys.set(purpose, key);
    }
    return key;
  }

  seal(purpose: SealPurpose, plaintext: Buffer, context: string): Buffer {
    const iv = secureRandomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.subkey(purpose), iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]);
  }

  /** Throws when the data was tampered with or sealed under another key or context. */
  open(purpose: SealPurpose, sealed: Buffer, context: string): Buffer {
    const decipher = createDecipheriv('aes-256-gcm', this.subkey(purpose), sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]);
  }
}

/**
 * Creates `dir` and its missing parents, each exactly 0700 whatever the umask (mkdir masks the mode);
 * an existing directory is left as it is. The same rule as the SQLite store's data directory.
 */
function makePrivateDir(dir: string): void {
  const target = resolve(dir);
  const first = mkdirSync(target, { recursive: true, mode: 0o700 });
  if (first === undefined) return;
  const top = resolve(first);
  for (let d = target; ; d = dirname(d)) {
    chmodSync(d, 0o700);
    if (d === top || dirname(d) === d) break;
  }
}
