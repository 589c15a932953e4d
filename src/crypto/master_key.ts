import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { makePrivateDir, openPrivateForReading, PRIVATE_FILE_MODE } from './private_files.js';
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

  /** Reads the key file, creating it (mode 0600, in a new directory 0700: S2-07) when absent; another user's is refused (S5-06). */
  static fromFile(path: string): MasterKey {
    if (!existsSync(path)) {
      makePrivateDir(dirname(path));
      writeFileSync(path, randomBytes(32).toString('base64') + '\n', { mode: PRIVATE_FILE_MODE, flag: 'wx' });
    }
    const fd = openPrivateForReading(path, 'the master key file');
    try {
      return MasterKey.fromBase64(readFileSync(fd, 'utf8'));
    } finally {
      closeSync(fd);
    }
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
