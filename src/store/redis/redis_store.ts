import type { Store } from '../../domain/store.js';
import type { Millis } from '../../domain/types.js';
import * as lua from './lua.js';
import { proofThenRotation } from '../proof_then_rotation.js';
import { RedisCatalog } from './catalog.js';
import { RedisConnection, type RedisStoreOptions } from './connection.js';
import { RedisKeys } from './keys.js';
import { RedisLimits } from './limits.js';
import { RedisPruner } from './prune.js';
import { RedisRotation } from './rotation.js';
import { RedisSessions } from './sessions.js';

export { REDIS_SCHEMA_VERSION, type RedisStoreOptions } from './connection.js';
export { RedisKeys } from './keys.js';

/**
 * Rotor on Redis Cluster (SPEC §7), assembled from its parts: the connection and migrations
 * (connection.ts), apps and keys in the directory slot (catalog.ts), subjects and sessions in their
 * bucket's slot (sessions.ts), the rotation and its durability (rotation.ts), rate limits, the DPoP
 * replay cache, events and activity (limits.ts), and pruning through indexes (prune.ts).
 *
 * Each subject's state — the subject, its sessions and their refresh chains — shares one hash slot, so
 * a rotation, a grace retry's read, a reuse revocation, a disable that revokes every session, and an
 * issuance that must not miss that disable are each one script on one shard. What spans slots is an
 * index written before the record it points to: a reader that finds an entry without its record finds
 * nothing. Every write that answers a request is followed by WAIT on the same connection and answered
 * only if the master and `minReplicas` replicas have it; otherwise 503.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly keys: RedisKeys;
  private readonly c: RedisConnection;
  private readonly catalog: RedisCatalog;
  private readonly sessions: RedisSessions;
  private readonly rotation: RedisRotation;
  private readonly limits: RedisLimits;
  private readonly pruner: RedisPruner;

  constructor(options: RedisStoreOptions) {
    this.c = new RedisConnection(options);
    this.keys = this.c.keys;
    this.catalog = new RedisCatalog(this.c);
    this.sessions = new RedisSessions(this.c);
    this.rotation = new RedisRotation(this.c);
    this.limits = new RedisLimits(this.c);
    this.pruner = new RedisPruner(this.c);
  }

  migrate: Store['migrate'] = () => this.c.migrate();
  ping: Store['ping'] = () => this.c.ping();
  close: Store['close'] = () => this.c.close();

  createApp: Store['createApp'] = (input) => this.catalog.createApp(input);
  findApp: Store['findApp'] = (ref) => this.catalog.findApp(ref);
  listApps: Store['listApps'] = () => this.catalog.listApps();
  updateApp: Store['updateApp'] = (app, expect) => this.catalog.updateApp(app, expect);
  deleteApp: Store['deleteApp'] = (appId) => this.catalog.deleteApp(appId);
  createAppKey: Store['createAppKey'] = (key) => this.catalog.createAppKey(key);
  findAppKey: Store['findAppKey'] = (id) => this.catalog.findAppKey(id);
  listAppKeys: Store['listAppKeys'] = (appId) => this.catalog.listAppKeys(appId);
  revokeAppKey: Store['revokeAppKey'] = (appId, id, now) => this.catalog.revokeAppKey(appId, id, now);
  listSigningKeys: Store['listSigningKeys'] = (appId) => this.catalog.listSigningKeys(appId);
  findSigningKey: Store['findSigningKey'] = (kid) => this.catalog.findSigningKey(kid);
  listPublishedSigningKeys: Store['listPublishedSigningKeys'] = (now) => this.catalog.listPublishedSigningKeys(now);
  rotateSigningKey: Store['rotateSigningKey'] = (input) => this.catalog.rotateSigningKey(input);
  revokeSigningKey: Store['revokeSigningKey'] = (appId, kid, now) => this.catalog.revokeSigningKey(appId, kid, now);
  signingKeysVersion: Store['signingKeysVersion'] = (appId) => this.catalog.signingKeysVersion(appId);
  clockNow: NonNullable<Store['clockNow']> = async () => Number(await this.c.run(lua.CLOCK_NOW, [this.c.keys.schema], []));

  findSubject: Store['findSubject'] = (appId, subject) => this.sessions.findSubject(appId, subject);
  patchSubject: Store['patchSubject'] = (input) => this.sessions.patchSubject(input);
  deleteSubject: Store['deleteSubject'] = (appId, subject, now) => this.sessions.deleteSubject(appId, subject, now);
  issueSession: Store['issueSession'] = (input) => this.sessions.issueSession(input);
  findSession: Store['findSession'] = (id) => this.sessions.findSession(id);
  findSessionByLocator: Store['findSessionByLocator'] = (locator) => this.sessions.findSessionByLocator(locator);
  listSessions: Store['listSessions'] = (appId, subject) => this.sessions.listSessions(appId, subject);
  revokeSession: Store['revokeSession'] = (id, reason, now) => this.sessions.revokeSession(id, reason, now);
  revokeSubjectSessions: Store['revokeSubjectSessions'] = (appId, subject, reason, now) => this.sessions.revokeSubjectSessions(appId, subject, reason, now);
  touchSession: Store['touchSession'] = (input) => this.sessions.touchSession(input);
  listSubjects: Store['listSubjects'] = (appId, page) => this.sessions.listSubjects(appId, page);
  listAppSessions: Store['listAppSessions'] = (appId, page) => this.sessions.listAppSessions(appId, page);

  rotateSession: Store['rotateSession'] = (input) => proofThenRotation(this, input, (i) => this.rotation.rotateSession(i));
  confirmRotation = (sessionId: string, generation: number): Promise<void> => this.rotation.confirmRotation(sessionId, generation);
  findLegacyRefresh: Store['findLegacyRefresh'] = (id) => this.rotation.findLegacyRefresh(id);
  findLiveLegacyRefresh: Store['findLiveLegacyRefresh'] = (sessionId) => this.rotation.findLiveLegacyRefresh(sessionId);
  upgradeLegacy: Store['upgradeLegacy'] = (input) => this.rotation.upgradeLegacy(input);

  useDpopProof: Store['useDpopProof'] = (input) => this.limits.useDpopProof(input);
  addRateHits = (input: { windowStart: Millis; hits: { key: string; count: number }[] }): Promise<Map<string, number>> => this.limits.addRateHits(input);
  appendEvent: Store['appendEvent'] = (event) => this.limits.appendEvent(event);
  listEvents: Store['listEvents'] = (query) => this.limits.listEvents(query);
  recordActivity: Store['recordActivity'] = (sample) => this.limits.recordActivity(sample);
  listActivity: Store['listActivity'] = (since) => this.limits.listActivity(since);
  pruneActivity: Store['pruneActivity'] = (input) => this.limits.pruneActivity(input);

  async prune(now: Millis, options: { revokedRetention: number }): Promise<{ refreshTokens: number; sessions: number }> {
    const pruned = await this.pruner.prune(now, options);
    await this.limits.prune(now);
    return pruned;
  }
}
