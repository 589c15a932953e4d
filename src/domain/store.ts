import type {
  App, AppKeyRecord, Millis, RefreshChain, RefreshRecord, Session, SigningKeyRecord, Subject, SubjectStatus,
} from './types.js';

/**
 * The storage contract every store implements. Operations that decide a race say who won in their
 * result, from one conditional write — never from a read followed by a write.
 * Stores throw `StoreUnavailableError` when the database cannot be reached; everything else is a value.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres' | 'redis';

  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /** The store's own clock, which every instance on it keeps time by (F-11); none on SQLite (one host). */
  clockNow?(): Promise<Millis>;

  // Apps, with their first app key and signing key, created in one step.
  createApp(input: CreateAppInput): Promise<CreateAppResult>;
  findApp(ref: FindAppInput): Promise<App | null>;
  listApps(): Promise<App[]>;
  /**
   * Compare-and-set of the mutable fields (name, public, policy, description, updated_at): writes only
   * if the stored row still has `expectUpdatedAt`, the `updatedAt` its caller read. `stale`: the row
   * changed since (or is gone): read it again and reapply the change. `name_taken`: the new name
   * belongs to another app. Callers keep `updated_at` strictly increasing per row
   * (`app.updatedAt > expectUpdatedAt`), which makes it the row's version.
   */
  updateApp(app: App, expectUpdatedAt: Millis): Promise<UpdateAppResult>;
  deleteApp(appId: string): Promise<boolean>;

  createAppKey(key: AppKeyRecord): Promise<void>;
  findAppKey(id: string): Promise<AppKeyRecord | null>;
  listAppKeys(appId: string): Promise<AppKeyRecord[]>;
  revokeAppKey(appId: string, id: string, now: Millis): Promise<boolean>;

  listSigningKeys(appId: string): Promise<SigningKeyRecord[]>;
  findSigningKey(kid: string): Promise<SigningKeyRecord | null>;
  /** Every app's keys that are still published (active, or retiring until `publishUntil`). */
  listPublishedSigningKeys(now: Millis): Promise<SigningKeyRecord[]>;
  /**
   * Makes `next` the active key and retires `expectActiveKid`, only if that is still the active key
   * (null: the app has none). Exactly one of several concurrent rotations wins.
   */
  rotateSigningKey(input: RotateSigningKeyInput): Promise<RotateResult>;
  revokeSigningKey(appId: string, kid: string, now: Millis): Promise<boolean>;
  /**
   * A counter bumped in the same write as every change of the app's signing keys (rotation, revocation);
   * 0 for an unknown app. Key caches are valid for one value of it.
   */
  signingKeysVersion(appId: string): Promise<number>;

  findSubject(appId: string, subject: string): Promise<Subject | null>;
  /**
   * Creates the subject (defaults: claims {}, active, no credentials) or changes only the columns `set`
   * names, and `updated_at`, in one step: never a whole-row write built from an earlier read, so
   * patches of different fields racing each other all survive. When the subject ends up disabled, its
   * live sessions are revoked in the same step. Returns the stored subject and its status before
   * (null: it was created).
   */
  patchSubject(input: PatchSubjectInput): Promise<PatchSubjectResult>;
  /** Deletes a subject and revokes all its sessions in one step. */
  deleteSubject(appId: string, subject: string, now: Millis): Promise<boolean>;

  /**
   * Creates the session (with its refresh chain at its first generation, if any) in one step; creates
   * the subject with `newSubjectClaims` when it does not exist. Refused when the subject exists but is
   * disabled.
   */
  issueSession(input: IssueSessionInput): Promise<IssueSessionResult>;
  /** A session with its subject's status and the app's signing-key version (S2-13), in one query. */
  findSession(id: string): Promise<FoundSession | null>;
  /** The same, by the session's locator (profiles whose refresh-token ids name no session). */
  findSessionByLocator(locator: string): Promise<FoundSession | null>;
  listSessions(appId: string, subject: string): Promise<Session[]>;
  /** Revokes a live session; true only for the caller whose write revoked it. */
  revokeSession(sessionId: string, reason: string, now: Millis): Promise<boolean>;
  revokeSubjectSessions(appId: string, subject: string, reason: string, now: Millis): Promise<number>;
  /** Records a renewal that minted only an access token (no refresh rotation). */
  touchSession(input: TouchInput): Promise<boolean>;

  /**
   * The rotation, one compare-and-set on the session's row: moves its chain from `expectGeneration` to
   * `next` only if it is still at that generation and the session is not revoked. `rotated: false`: another
   * request rotated it first, or the session was revoked meanwhile. Group-committed by both SQL stores.
   * `dpopProof` is recorded as `useDpopProof` would, first: one seen before is `proofReplayed` and nothing
   * is written. The SQL stores commit both in one transaction; Redis records the proof, then rotates.
   */
  rotateSession(input: RotateInput): Promise<RotateSessionResult>;

  /** A pre-upgrade refresh record (SPEC §2.9: they keep working until they expire), with its session. */
  findLegacyRefresh(id: string): Promise<FoundLegacyRefresh | null>;
  /** A session's one unconsumed pre-upgrade record, while its chain has not started (JWTPlus get-session). */
  findLiveLegacyRefresh(sessionId: string): Promise<RefreshRecord | null>;
  /**
   * A pre-upgrade token's one rotation: consumes the record (its successor becomes `UPGRADED`) and starts
   * the session's chain at `next`, atomically, only if the record is unconsumed, the session has no chain
   * yet and is not revoked. `locator`: the session's new locator, for profiles whose ids must carry one
   * (pre-upgrade sessions have none).
   */
  upgradeLegacy(input: UpgradeLegacyInput): Promise<RotateResult>;

  /**
   * The DPoP replay cache (RFC 9449 §11.1): records a proof's `key` (its jti, hashed with its key's
   * thumbprint) until `expiresAt`, across every instance. True only for the first caller: a proof seen
   * before is a replay. Pruned after `expiresAt`. The same proof always comes with the same `expiresAt`
   * (the domain derives it from the proof's iat), so a store may order its marks by `(expiresAt, key)`:
   * new marks land together at one end, and pruning takes a range off the other.
   */
  useDpopProof(input: DpopProofInput): Promise<boolean>;

  /**
   * Rate-limit pooling: adds this instance's hits for a one-minute window and returns every key's total
   * across instances. Optional: without it each instance limits on its own counts.
   */
  addRateHits?(input: RateHitsInput): Promise<Map<string, number>>;

  /**
   * With `FoundSession.rotation`: makes the session's pending rotation to `generation` durable
   * (replicated) before a retry of its parent is answered from it, or throws StoreUnavailableError.
   * Nothing pending: returns at once.
   */
  confirmRotation?(sessionId: string, generation: number): Promise<void>;

  /** Deletes rows nothing can use any more; see docs/architecture.md "Pruning". */
  prune(now: Millis, options: PruneOptions): Promise<PruneResult>;

  // ── Listings, security events and activity samples (admin API §4.3, the console) ────────────────

  /**
   * An app's subjects in byte order of their id, those after `after` (exclusive; null: from the first),
   * at most `limit`, each with how many of its sessions are neither revoked nor past their horizon at `now`.
   */
  listSubjects(appId: string, page: SubjectPage): Promise<SubjectListing[]>;
  /**
   * An app's sessions (of one subject when `subject` is set), newest first (by id, a ULID), those before
   * `before` (exclusive; null: from the newest), at most `limit`. Revoked ones are listed until pruned.
   */
  listAppSessions(appId: string, page: AppSessionPage): Promise<Session[]>;
  /** Records one security event; the store gives it an id larger than every id it gave before. */
  appendEvent(event: NewSecurityEventRecord): Promise<void>;
  /**
   * Security events in id order (newest last). With neither `afterId` nor `sinceAt`: the newest `limit`.
   * Otherwise the first `limit` events with an id above `afterId` and a time at or after `sinceAt`.
   */
  listEvents(query: EventQuery): Promise<SecurityEventRecord[]>;
  /** Records one instance's activity over one interval (its counters' increase); a repeated (instance, at) replaces it. */
  recordActivity(sample: ActivitySample): Promise<void>;
  /** Every instance's samples with `at` at or after `since`, in time order. */
  listActivity(since: Millis): Promise<ActivitySample[]>;
  /** Deletes events older than `eventsBefore` and samples older than `samplesBefore`. */
  pruneActivity(input: PruneActivityInput): Promise<PruneActivityResult>;
}

/** A subject with the number of its live sessions (`listSubjects`). */
export interface SubjectListing {
  subject: Subject;
  liveSessions: number;
}

/** Values of a security event's fields: ids, reasons and counts only, never a token, key or secret. */
export type SecurityEventFields = Record<string, string | number | null>;

export interface NewSecurityEventRecord {
  at: Millis;
  event: string;
  appId: string | null;
  fields: SecurityEventFields;
}

export interface SecurityEventRecord extends NewSecurityEventRecord {
  id: number;
}

/** One instance's counters over one interval ending at `at`; `data` is the sampler's own JSON (src/http/activity.ts). */
export interface ActivitySample {
  instance: string;
  at: Millis;
  data: Record<string, unknown>;
}

/** The columns of a subject a patch may set; a field left out keeps its stored value. */
export interface SubjectColumns {
  claims?: Record<string, unknown>;
  status?: SubjectStatus;
  passwordHash?: string | null;
  ed25519PublicKey?: string | null;
}

export interface FoundSession {
  session: Session;
  subjectStatus: SubjectStatus | null;
  keysVersion: number;
  /**
   * Only from stores that answer a rotation once it is replicated (Redis Cluster): the live
   * generation's rotation is not confirmed yet. `in_flight`: its confirmation may still come (its
   * caller is waiting); `unconfirmed`: its caller was answered 503, so its parent must stay redeemable
   * for this same generation whatever the grace window, until a later rotation is confirmed (SPEC §7).
   * A retry answered from such a rotation must first `confirmRotation`. Absent: confirmed.
   */
  rotation?: 'in_flight' | 'unconfirmed';
}

export interface FoundLegacyRefresh extends FoundSession {
  record: RefreshRecord;
}

/** `successorId` of a pre-upgrade record whose successor is its session's first chain generation. */
export const UPGRADED = '@chain';

/** One rotation of a session's chain (see `rotateSession`), with what the renewal records on the session. */
export interface RotateInput {
  sessionId: string;
  expectGeneration: number;
  next: RefreshChain;
  now: Millis;
  lastIp: string | null;
  lastUserAgent: string | null;
  /** The session's new horizon (its last token's expiry), never moved back. */
  horizonAt: Millis;
  /** Binds the session to this DPoP key if it is not bound yet (a public client's first proof). */
  bindJkt?: string | null;
  /** The request's DPoP proof, for the replay cache (see `rotateSession`). */
  dpopProof?: DpopProofInput | null;
}

/** A renewal that minted only an access token: the session's last-seen values and horizon. */
export interface TouchInput {
  sessionId: string;
  now: Millis;
  lastIp: string | null;
  lastUserAgent: string | null;
  horizonAt: Millis;
}

// ── Named inputs and results of the operations above (one shape each, shared by every store) ────────

/** An app with its first app key and signing key (`createApp`). `created: false`: the id or name is taken. */
export interface CreateAppInput {
  app: App;
  appKey: AppKeyRecord;
  signingKey: SigningKeyRecord;
}

export interface CreateAppResult {
  created: boolean;
}

/** `findApp` by id when `id` is set, else by name. */
export interface FindAppInput {
  id?: string;
  name?: string;
}

export type UpdateAppResult = { updated: true } | { updated: false; reason: 'stale' | 'name_taken' };

/** See `rotateSigningKey`. */
export interface RotateSigningKeyInput {
  appId: string;
  /** The key the caller saw active; null: the app had none. */
  expectActiveKid: string | null;
  next: SigningKeyRecord;
  now: Millis;
  /** Until when the retired key stays published. */
  publishUntil: Millis;
}

/** The outcome of a compare-and-set rotation (signing key, session chain, legacy upgrade): true for its one winner. */
export interface RotateResult {
  rotated: boolean;
}
export type RotateSessionResult = RotateResult & { proofReplayed?: boolean };

/** See `patchSubject`. */
export interface PatchSubjectInput {
  appId: string;
  subject: string;
  set: SubjectColumns;
  now: Millis;
}

export interface PatchSubjectResult {
  subject: Subject;
  /** null: the patch created the subject. */
  previousStatus: SubjectStatus | null;
}

/** See `issueSession`. */
export interface IssueSessionInput {
  session: Session;
  newSubjectClaims: Record<string, unknown>;
  /** Revoke every other live session of the subject first (Verifik renew-and-revoke), with this reason. */
  revokeOthers?: string;
}

export type IssueSessionResult = { issued: true; subject: Subject } | { issued: false; reason: 'subject_disabled' };

/** See `upgradeLegacy`: the rotation that starts the chain, with the pre-upgrade record it consumes. */
export interface UpgradeLegacyInput extends RotateInput {
  legacyId: string;
  locator: string | null;
}

/** See `useDpopProof`. */
export interface DpopProofInput { key: string; expiresAt: Millis }

/** See `addRateHits`. */
export interface RateHitsInput {
  windowStart: Millis;
  hits: { key: string; count: number }[];
}

export interface PruneOptions {
  /** How long revoked sessions stay listable, milliseconds. */
  revokedRetention: number;
}

export interface PruneResult { refreshTokens: number; sessions: number }

/** See `listSubjects`. */
export interface SubjectPage {
  after: string | null;
  limit: number;
  now: Millis;
}

/** See `listAppSessions`. */
export interface AppSessionPage {
  subject: string | null;
  before: string | null;
  limit: number;
}

/** See `listEvents`. */
export interface EventQuery {
  afterId: number | null;
  sinceAt: Millis | null;
  limit: number;
}

/** See `pruneActivity`. */
export interface PruneActivityInput {
  eventsBefore: Millis;
  samplesBefore: Millis;
}

export interface PruneActivityResult { events: number; samples: number }
