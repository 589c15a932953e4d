import type { App, AppKeyRecord, Millis, RefreshRecord, Session, SigningKeyRecord, Subject } from '../../domain/types.js';
import type {
  ActivitySample, AppSessionPage, CreateAppInput, CreateAppResult, DpopProofInput, EventQuery, FindAppInput, FoundLegacyRefresh,
  FoundSession, IssueSessionInput, IssueSessionResult, NewSecurityEventRecord, PatchSubjectInput, PatchSubjectResult, PruneActivityInput,
  PruneActivityResult, PruneOptions, PruneResult, RateHitsInput, RotateInput, RotateResult, RotateSessionResult, RotateSigningKeyInput, SecurityEventRecord,
  Store, SubjectListing, SubjectPage, TouchInput, UpdateAppResult, UpgradeLegacyInput,
} from '../../domain/store.js';
import * as activity from './activity.js';
import * as catalog from './catalog.js';
import { PostgresConnection, type PostgresStoreOptions } from './connection.js';
import { PostgresGroupCommit } from './group_commit.js';
import * as guards from './guards.js';
import { UnconfirmedRotations } from './outcome.js';
import { prune } from './pruning.js';
import * as sessions from './sessions.js';

export { postgresOptionsFromUrl, type PostgresStoreOptions } from './connection.js';

/**
 * The shared store for several instances. Every race-deciding operation decides in one conditional
 * statement (or, where a new snapshot is needed after taking a lock, in one READ COMMITTED transaction
 * whose first write takes that lock). Driver and server failures that mean "not now" become
 * `StoreUnavailableError` (503); text the database cannot store (NUL) becomes `invalid_request` (400).
 * This class only routes: the pool and migrations (connection.ts), group commit (group_commit.ts), the
 * catalog of apps, keys and subjects (catalog.ts), sessions and rotation (sessions.ts), request guards
 * (guards.ts), pruning (pruning.ts), and listings, events and activity (activity.ts).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  private readonly c: PostgresConnection;
  private readonly hot: PostgresGroupCommit;
  private readonly unconfirmed: UnconfirmedRotations;
  private closing: Promise<void> | null = null;

  constructor(connectionString: string, options: PostgresStoreOptions = {}) {
    this.c = new PostgresConnection(connectionString, options);
    this.unconfirmed = new UnconfirmedRotations(this.c);
    this.hot = new PostgresGroupCommit(this.c, this.unconfirmed);
  }

  /** On a connection of its own, without the pool's timeouts (see PostgresConnection.migrate). */
  async migrate(): Promise<void> {
    await this.c.migrate();
    // Rotation deadlines are reckoned on the database's clock (outcome.ts): sampled before the first.
    await this.c.sampleClock().catch(() => undefined);
  }
  ping(): Promise<void> { return this.c.ping(); }

  /** Ends the pool once; closing again (SIGINT after SIGTERM, say) waits for the same close. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // Calls already accepted are answered (or fail) before the pool goes.
      await this.hot.drain();
      await this.unconfirmed.close();
      await this.c.end();
    })();
    return this.closing;
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

  async clockNow(): Promise<Millis> {
    return this.c.sampleClock();
  }

  findSubject(appId: string, subject: string): Promise<Subject | null> { return catalog.findSubject(this.c, appId, subject); }
  patchSubject(input: PatchSubjectInput): Promise<PatchSubjectResult> { return catalog.patchSubject(this.c, input); }
  deleteSubject(appId: string, subject: string, now: Millis): Promise<boolean> { return catalog.deleteSubject(this.c, appId, subject, now); }

  // ── sessions and rotation ────────────────────────────────────────────────────────────────────────

  issueSession(input: IssueSessionInput): Promise<IssueSessionResult> { return sessions.issueSession(this.c, input); }
  /** Lookups of one event-loop turn go to the server as one statement (see group_commit.ts). */
  findSession(id: string): Promise<FoundSession | null> { return this.hot.findSession(id); }
  findSessionByLocator(locator: string): Promise<FoundSession | null> { return sessions.findSessionByLocator(this.c, this.unconfirmed, locator); }
  listSessions(appId: string, subject: string): Promise<Session[]> { return sessions.listSessions(this.c, appId, subject); }
  revokeSession(sessionId: string, reason: string, now: Millis): Promise<boolean> { return sessions.revokeSession(this.c, sessionId, reason, now); }

  revokeSubjectSessions(appId: string, subject: string, reason: string, now: Millis): Promise<number> {
    return sessions.revokeSubjectSessions(this.c, appId, subject, reason, now);
  }

  touchSession(input: TouchInput): Promise<boolean> { return sessions.touchSession(this.c, input); }
  /** Group-committed (see group_commit.ts): the rotations of one turn, and their DPoP marks, share one statement and one commit. */
  rotateSession(input: RotateInput): Promise<RotateSessionResult> { return this.hot.rotateSession(input); }

  findLegacyRefresh(id: string): Promise<FoundLegacyRefresh | null> { return sessions.findLegacyRefresh(this.c, id); }
  findLiveLegacyRefresh(sessionId: string): Promise<RefreshRecord | null> { return sessions.findLiveLegacyRefresh(this.c, sessionId); }
  upgradeLegacy(input: UpgradeLegacyInput): Promise<RotateResult> { return sessions.upgradeLegacy(this.c, input); }

  // ── request guards, pruning ──────────────────────────────────────────────────────────────────────

  useDpopProof(input: DpopProofInput): Promise<boolean> { return guards.useDpopProof(this.c, input); }
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
