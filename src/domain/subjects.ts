import { createPublicKey, verify as verifySignature } from 'node:crypto';
import { blake2b } from '@noble/hashes/blake2.js';
import { hashPassword, verifyPassword } from '../crypto/passwords.js';
import type { Store, SubjectColumns } from '../store/contract.js';
import { validateClaims, validateSubject } from './claims.js';
import type { Clock } from './clock.js';
import { invalidRequest, RotorError } from './errors.js';
import type { Observer } from './events.js';
import type { FormatRegistry } from './format_registry.js';
import type { App, Subject } from './types.js';

export interface SubjectPatch {
  claims?: unknown;
  status?: unknown;
  password?: unknown;
  ed25519PublicKey?: unknown;
}

const ED25519_HEX = /^[0-9a-fA-F]{64}$/;
const ED25519_SIGNATURE_HEX = /^[0-9a-fA-F]{128}$/;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The two digests a FIB client may sign to log in, both BLAKE2b-256 of the UTF-8 e-mail: `plain`, as
 * FIB's current Python and Node examples sign it, and `iroha`, with the lowest bit of the last byte
 * set, as the Iroha SDK's hash (FIB's Kotlin example) makes it. They differ for about half of all
 * addresses; a signature of either by the registered key is as good as the other.
 */
export const FIB_LOGIN_DIGESTS = ['plain', 'iroha'] as const;
export type FibLoginDigest = (typeof FIB_LOGIN_DIGESTS)[number];

/** What a FIB client signs to log in, in one of the two forms FIB's clients produce. */
export function fibLoginDigest(email: string, variant: FibLoginDigest): Buffer {
  const digest = Buffer.from(blake2b(Buffer.from(email, 'utf8'), { dkLen: 32 }));
  if (variant === 'iroha') digest[31] = (digest[31] as number) | 1;
  return digest;
}

/** Users of an app, with optional credentials. Disabling or deleting one ends its sessions. */
export class Subjects {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly observer: Observer;
  private readonly formats: FormatRegistry;

  constructor(deps: { store: Store; clock: Clock; observer: Observer; formats: FormatRegistry }) {
    this.store = deps.store;
    this.clock = deps.clock;
    this.observer = deps.observer;
    this.formats = deps.formats;
  }

  /**
   * Creates or updates a subject; fields left out keep their current values. Everything is validated
   * and the password hashed before the store is touched; the store then writes only the fields the
   * patch names, in one step (S2-12: a password change that read the subject before a concurrent
   * disable would otherwise write the old status back, and the subject would get sessions again).
   */
  async put(app: App, subjectId: unknown, patch: SubjectPatch): Promise<Subject> {
    const subject = validateSubject(subjectId);
    const set: SubjectColumns = {};
    if (patch.claims !== undefined) set.claims = validateClaims(patch.claims, this.formats.formatFor(app.profile).reservedClaims);
    if (patch.status !== undefined) {
      if (patch.status !== 'active' && patch.status !== 'disabled') throw invalidRequest('status must be "active" or "disabled"');
      set.status = patch.status;
    }
    let password: string | null | undefined;
    if (patch.password !== undefined) {
      if (patch.password !== null && (typeof patch.password !== 'string' || patch.password.length < 1 || patch.password.length > 1024)) {
        throw invalidRequest('password must be a string of 1 to 1024 characters');
      }
      password = patch.password;
    }
    if (patch.ed25519PublicKey !== undefined) {
      if (patch.ed25519PublicKey === null) set.ed25519PublicKey = null;
      else if (typeof patch.ed25519PublicKey !== 'string' || !ED25519_HEX.test(patch.ed25519PublicKey)) {
        throw invalidRequest('ed25519PublicKey must be 64 hex characters (a raw 32-byte Ed25519 public key)');
      } else set.ed25519PublicKey = patch.ed25519PublicKey.toLowerCase();
    }
    if (password !== undefined) set.passwordHash = password === null ? null : await hashPassword(password);
    const { subject: stored, previousStatus } = await this.store.patchSubject({ appId: app.id, subject, set, now: this.clock.now() });
    if (stored.status === 'disabled' && previousStatus !== 'disabled') {
      this.observer.event('subject_disabled', { appId: app.id });
    }
    return stored;
  }

  async get(app: App, subjectId: unknown): Promise<Subject> {
    const subject = await this.store.findSubject(app.id, validateSubject(subjectId));
    if (!subject) throw new RotorError('subject_not_found', 'no subject has that id in this app');
    return subject;
  }

  async delete(app: App, subjectId: unknown): Promise<void> {
    const deleted = await this.store.deleteSubject(app.id, validateSubject(subjectId), this.clock.now());
    if (!deleted) throw new RotorError('subject_not_found', 'no subject has that id in this app');
    this.observer.event('subject_deleted', { appId: app.id });
  }

  /**
   * FIB login (SPEC §4.4): `signatureHex` must be an Ed25519 signature of either `fibLoginDigest` of the
   * subject, made with the key registered for that subject, and `publicKeyHex` must be that key. An
   * e-mail that is no subject id is `invalid_request`; a signature that cannot be decoded, a public key
   * that is not one, or either that does not verify, is `invalid_credentials` (FIB's one 422); an
   * unknown subject is `subject_not_found`; a disabled subject is told so only after its signature verified.
   */
  async checkEd25519(app: App, subjectId: unknown, signatureHex: unknown, publicKeyHex: unknown): Promise<Subject> {
    const subject = validateSubject(subjectId, 'email');
    const fail = (detail = 'the signature or public key does not verify'): never => {
      this.observer.event('login_failed', { appId: app.id });
      throw new RotorError('invalid_credentials', detail);
    };
    if (typeof signatureHex !== 'string' || !ED25519_SIGNATURE_HEX.test(signatureHex)) {
      return fail('signature must be 128 hex characters (an Ed25519 signature)');
    }
    if (typeof publicKeyHex !== 'string' || !ED25519_HEX.test(publicKeyHex)) {
      return fail('authPublicKeyHex must be 64 hex characters (a raw Ed25519 public key)');
    }
    const found = await this.store.findSubject(app.id, subject);
    if (!found) throw new RotorError('subject_not_found', 'no subject has that id in this app');
    const registered = found.ed25519PublicKey;
    if (registered === null || registered !== publicKeyHex.toLowerCase()) return fail();
    let ok = false;
    try {
      const key = createPublicKey({
        key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(registered, 'hex')]), format: 'der', type: 'spki',
      });
      const signature = Buffer.from(signatureHex, 'hex');
      ok = FIB_LOGIN_DIGESTS.some((variant) => verifySignature(null, fibLoginDigest(subject, variant), key, signature));
    } catch {
      ok = false;
    }
    if (!ok) return fail();
    if (found.status !== 'active') throw new RotorError('subject_disabled', 'the subject is disabled');
    return found;
  }

  /** The subject whose password this is; an unknown user and a wrong password answer alike and in like time. */
  async checkPassword(app: App, username: unknown, password: unknown): Promise<Subject> {
    const fail = (): never => {
      this.observer.event('login_failed', { appId: app.id });
      throw new RotorError('invalid_credentials', 'the username or password is wrong');
    };
    if (typeof username !== 'string' || typeof password !== 'string' || username.length > 255 || password.length > 1024) {
      return fail();
    }
    const subject = username.length > 0 ? await this.store.findSubject(app.id, username) : null;
    const ok = await verifyPassword(subject?.passwordHash ?? null, password);
    // A disabled subject gets the wrong-password answer even with the right password: a distinct answer
    // would confirm the password to whoever guessed it (S2-15).
    if (!ok || !subject || subject.status !== 'active') return fail();
    return subject;
  }
}
