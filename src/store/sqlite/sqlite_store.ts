import type { App, AppKeyRecord, Millis, RefreshRecord, Session, SigningKeyRecord, Subject } from '../../domain/types.js';
import { StoreUnavailableError } from '../../domain/errors.js';
import type {
  ActivitySample, AppSessionPage, CreateAppInput, CreateAppResult, DpopProofInput, EventQuery, FindAppInput, FoundLegacyRefresh,
  FoundSession, IssueSessionInput, IssueSessionResult, NewSecurityEventRecord, PatchSubjectInput, PatchSubjectResult, PruneActivityInput,
  PruneActivityResult, PruneOptions, PruneResult, RateHitsInput, RotateInput, RotateResult, RotateSessionResult, RotateSigningKeyInput, SecurityEventRecord,
  Store, SubjectListing, SubjectPage, TouchInput, UpdateAppResult, UpgradeLegacyInput,
} from '../../domain/store.js';
import type { TurnBatcher } from '../turn_batcher.js';
import * as activity from './activity.js';
import * as catalog from './catalog.js';
import { SqliteConnection, type SqliteStoreOptions } from './connection.js';
import { groupCommitted } from './group_commit.js';
import * as guards from './guards.js';
import { prune } from './pruning.js';
import * as sessions from './sessions.js';

export type { SqliteStoreOptions } from './connection.js';

/**
 * The embedded store. better-sqlite3 is synchronous, so each operation runs to completion on the event
 * loop; writes that decide races run in `BEGIN IMMEDIATE` transactions, which also serialise them
 * against other processes sharing the file (WAL mode, busy timeout). This class only routes: the
 * connection (connection.ts: pragmas, migrations, checkpointer), group commit (group_commit.ts), the
 * catalog of apps, keys and subjects (catalog.ts), sessions and rotation (sessions.ts), request guards
 * (guards.ts), pruning (pruning.ts), and listings, events and activity (activity.ts).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly c: SqliteConnection;
  private readonly rotations: TurnBatcher<RotateInput, RotateSessionResult>;
  private readonly touches: TurnBatcher<TouchInput, boolean>;
  private readonly dpopProofs: TurnBatcher<DpopProofInput, boolean>;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.c = new SqliteConnection(path, options);
    // A rotation's DPoP proof enters the replay cache in the rotation's own transaction: one commit, not two.
    this.rotations = groupCommitted(this.c, (input: RotateInput): RotateSessionResult => (input.dpopProof && !guards.insertDpopProof(this.c, input.dpopProof)
      ? { rotated: false, proofReplayed: true }
      : { rotated: sessions.rotateOne(this.c, input) }));
    this.touches = groupCommitted(this.c, (input: TouchInput) => sessions.touchOne(this.c, input));
    // DPoP's replay cache is written on every proven refresh: its inserts share a turn's COMMIT too, each
    // still its own conditional INSERT deciding, in arrival order, which caller used a proof first.
    this.dpopProofs = groupCommitted(this.c, (input: DpopProofInput) => guards.insertDpopProof(this.c, input));
  }

  migrate(): Promise<void> { return this.c.migrate(); }
  ping(): Promise<void> { return this.c.ping(); }

  async close(): Promise<void> {
    // Rotations already accepted commit (or fail) before the connection goes.
    await Promise.all([this.rotations.drain(), this.touches.drain(), this.dpopProofs.drain()]);
    await this.c.close();
  }

  // ── catalog: apps, app keys, signing keys, subjects ──────────────────────────────────────────────

  createApp(input: CreateAppInput): Promise<CreateAppResult> { return catalog.createApp(this.c, input); }
  findApp(ref: FindAppInput): Promise<App | null> { return catalog.findApp(this.c, ref); }
  listApps(): Promise<App[]> { return catalog.listApps(this.c); }
  updateApp(app: App, expectUpdatedAt: Millis): Promise<UpdateAppResult> { return catalog.updateApp(this.c, app, expectUpdatedAt); }
  deleteApp(appId: string): Promise<boolean> { return catalog.deleteApp(this.c, appId); }

  createAppKey(key: AppKeyRecord): Promise<void> { return catalog.createAppKey(this.c, key); }
  findAppKey(id: string): Promise<AppKeyRecord | null> { return catalog.findAppKey(this.c, id); }
  listAppKeys(appId: string): Promise<AppKeyRecord[]> { return catalog.listAppKeys(this.c, appId); }
  revokeAppKey(appId: string, id: string, now: Millis): Promise<boolean> { return catalog.revokeAppKey(this.c, appId, id, now); }

  listSigningKeys(appId: string): Promise<SigningKeyRecord[]> { return catalog.listSigningKeys(this.c, appId); }
  findSigningKey(kid: string): Promise<SigningKeyRecord | null> { return catalog.findSigningKey(this.c, kid); }
  listPublishedSigningKeys(now: Millis): Promise<SigningKeyRecord[]> { return catalog.listPublishedSigningKeys(this.c, now); }
  rotateSigningKey(input: RotateSigningKeyInput): Promise<RotateResult> { return catalog.rotateSigningKey(this.c, input); }
  revokeSigningKey(appId: string, kid: string, now: Millis): Promise<boolean> { return catalog.revokeSigningKey(this.c, appId, kid, now); }
  signingKeysVersion(appId: string): Promise<number> { return catalog.signingKeysVersion(this.c, appId); }

  findSubject(appId: string, subject: string): Promise<Subject | null> { return catalog.findSubject(this.c, appId, subject); }
  patchSubject(input: PatchSubjectInput): Promise<PatchSubjectResult> { return catalog.patchSubject(this.c, input); }
  deleteSubject(appId: string, subject: string, now: Millis): Promise<boolean> { return catalog.deleteSubject(this.c, appId, subject, now); }

  // ── sessions and rotation ────────────────────────────────────────────────────────────────────────

  issueSession(input: IssueSessionInput): Promise<IssueSessionResult> { return sessions.issueSession(this.c, input); }
  findSession(id: string): Promise<FoundSession | null> { return sessions.findSession(this.c, id); }
  findSessionByLocator(locator: string): Promise<FoundSession | null> { return sessions.findSessionByLocator(this.c, locator); }
  listSessions(appId: string, subject: string): Promise<Session[]> { return sessions.listSessions(this.c, appId, subject); }
  revokeSession(sessionId: string, reason: string, now: Millis): Promise<boolean> { return sessions.revokeSession(this.c, sessionId, reason, now); }

  revokeSubjectSessions(appId: string, subject: string, reason: string, now: Millis): Promise<number> {
    return sessions.revokeSubjectSessions(this.c, appId, subject, reason, now);
  }

  /** Group-committed like rotations: a renewal without rotation (Verifik) is also on the hot path. */
  touchSession(input: TouchInput): Promise<boolean> {
    if (!this.c.open) return Promise.reject(new StoreUnavailableError());
    return this.touches.submit(input);
  }

  /** Group-committed (see group_commit.ts): each rotation is still its own compare-and-set deciding its race. */
  rotateSession(input: RotateInput): Promise<RotateSessionResult> {
    if (!this.c.open) return Promise.reject(new StoreUnavailableError());
    return this.rotations.submit(input);
  }

  findLegacyRefresh(id: string): Promise<FoundLegacyRefresh | null> { return sessions.findLegacyRefresh(this.c, id); }
  findLiveLegacyRefresh(sessionId: string): Promise<RefreshRecord | null> { return sessions.findLiveLegacyRefresh(this.c, sessionId); }
  upgradeLegacy(input: UpgradeLegacyInput): Promise<RotateResult> { return sessions.upgradeLegacy(this.c, input); }

  // ── request guards, pruning ──────────────────────────────────────────────────────────────────────

  useDpopProof(input: DpopProofInput): Promise<boolean> { return this.dpopProofs.submit(input); }
  addRateHits(input: RateHitsInput): Promise<Map<string, number>> { return guards.addRateHits(this.c, input); }
  prune(now: Millis, options: PruneOptions): Promise<PruneResult> { return prune(this.c, now, options); }

  // ── listings, security events, activity samples ──────────────────────────────────────────────────

  listSubjects(appId: string, page: SubjectPage): Promise<SubjectListing[]> { return activity.listSubjects(this.c, appId, page); }
  listAppSessions(appId: string, page: AppSessionPage): Promise<Session[]> { return activity.listAppSessions(this.c, appId, page); }
  appendEvent(event: NewSecurityEventRecord): Promise<void> { return activity.appendEvent(this.c, event); }
  listEvents(query: EventQuery): Promise<SecurityEventRecord[]> { return activity.listEvents(this.c, query); }
  recordActivity(sample: ActivitySample): Promise<void> { return activity.recordActivity(this.c, sample); }
  listActivity(since: Millis): Promise<ActivitySample[]> { return activity.listActivity(this.c, since); }
  pruneActivity(input: PruneActivityInput): Promise<PruneActivityResult> { return activity.pruneActivity(this.c, input); }
}
