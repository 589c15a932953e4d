import { hashPassword, verifyPassword } from '../crypto/passwords.js';
import type { Store, SubjectColumns } from './store.js';
import { isSubjectId, validateClaims, validateSubject } from './claims.js';
import type { Clock } from './clock.js';
import { invalidRequest, RotorError } from './errors.js';
import { knownFields, TIMESTAMPS_KEPT, type FieldRules } from './fields.js';
import type { Observer } from './events.js';
import type { LoginRule } from './dialect.js';
import type { FormatRegistry } from './format_registry.js';
import type { App, Subject } from './types.js';

export interface SubjectPatch {
  claims?: unknown;
  status?: unknown;
  password?: unknown;
  ed25519PublicKey?: unknown;
}

/** What `put` takes; what a subject shows that is not set this way. */
const PUT_FIELDS: FieldRules = {
  known: ['claims', 'status', 'password', 'ed25519PublicKey'],
  fixed: {
    subject: 'cannot be changed: the path names the subject',
    hasPassword: 'cannot be set: send password (null clears it)',
    ...TIMESTAMPS_KEPT,
  },
};

/** A raw 32-byte Ed25519 public key, hex (FIB's login key, registered per subject). */
const ED25519_HEX = /^[0-9a-fA-F]{64}$/;
/** Users of an app, with optional credentials. Disabling or deleting one ends its sessions. */
export class Subjects {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly observer: Observer;
  /** Each profile's token layout (its reserved claims), from the domain's profiles. */
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
   * `fields` is a `SubjectPatch`, checked here: the admin API hands over its body as it came.
   */
  async put(app: App, subjectId: unknown, fields: unknown): Promise<Subject> {
    const patch: SubjectPatch = knownFields('a subject', fields, PUT_FIELDS);
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
   * A dialect's own login (SPEC §4.4; FIB's Ed25519 signature): the subject `subjectId` names, when
   * `presented` proves it by the dialect's `rule`. A subject id that is none is `invalid_request`; a
   * proof that is malformed or does not verify is `invalid_credentials` (recorded as a failed login); an
   * unknown subject is `subject_not_found`; a disabled subject is told so only after its proof verified.
   */
  async checkLogin<P>(app: App, subjectId: unknown, rule: LoginRule<P>, presented: P): Promise<Subject> {
    const subject = validateSubject(subjectId, rule.subjectField);
    const fail = (detail: string): never => {
      this.observer.event('login_failed', { appId: app.id });
      throw new RotorError('invalid_credentials', detail);
    };
    const malformed = rule.malformed(presented);
    if (malformed !== null) return fail(malformed);
    const found = await this.store.findSubject(app.id, subject);
    if (!found) throw new RotorError('subject_not_found', 'no subject has that id in this app');
    if (!rule.verifies(found, presented)) return fail(rule.refusal);
    if (found.status !== 'active') throw new RotorError('subject_disabled', 'the subject is disabled');
    return found;
  }

  /**
   * A login that names no app (Abitmedia's root): the subject among `apps` whose password this is, from
   * the username's `maxApps` most recent registrations; the newest whose password matches wins. It costs
   * min(apps, maxApps) password checks whatever the username: decoys stand in for registrations it lacks,
   * and a match skips none, so the time does not tell how many apps know the username (D-03).
   */
  async checkPasswordAmong(apps: readonly App[], username: unknown, password: unknown, maxApps: number): Promise<{ app: App; subject: Subject }> {
    const fail = (tried: readonly App[]): never => {
      for (const app of tried) this.observer.event('login_failed', { appId: app.id });
      throw new RotorError('invalid_credentials', 'the username or password is wrong');
    };
    // Refused unchecked, as by checkPassword: what is refused here shows in the request itself.
    if (typeof username !== 'string' || typeof password !== 'string' || username.length > 255 || password.length > 1024) {
      return fail(apps.slice(0, 1));
    }
    const found: { app: App; subject: Subject }[] = [];
    if (isSubjectId(username)) {
      for (const app of apps) {
        const subject = await this.store.findSubject(app.id, username);
        if (subject) found.push({ app, subject });
      }
    }
    const checks = Math.min(apps.length, maxApps);
    // Only registrations that can log in take a place: a disabled one answers as a wrong password (S2-15)
    // and one without a password as an unknown user, so neither may crowd out an older one that can.
    const candidates = found
      .filter((c) => c.subject.status === 'active' && c.subject.passwordHash !== null)
      .sort((a, b) => b.subject.updatedAt - a.subject.updatedAt)
      .slice(0, checks);
    // All at once: the libuv pool runs them side by side, so a login waits for about one check.
    const matched = await Promise.all(Array.from({ length: checks }, (_, i) => verifyPassword(candidates[i]?.subject.passwordHash ?? null, password)));
    const match = candidates.find((_, i) => matched[i] === true);
    return match ?? fail(found.length > 0 ? found.slice(0, checks).map((c) => c.app) : apps.slice(0, 1));
  }

  /** The subject whose password this is; an unknown user and a wrong password answer alike and in like time. */
  async checkPassword(app: App, username: unknown, password: unknown): Promise<Subject> {
    // One app, one check. A name no subject can have (a NUL, a control character) is simply unknown: the
    // store never sees it, so every store answers alike (PostgreSQL would refuse the NUL itself). A
    // disabled subject gets the wrong-password answer even with the right password: a distinct answer
    // would confirm the password to whoever guessed it (S2-15).
    return (await this.checkPasswordAmong([app], username, password, 1)).subject;
  }
}
