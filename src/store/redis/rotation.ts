import { randomBytes } from 'node:crypto';
import { StoreUnavailableError } from '../../domain/errors.js';
import type { RefreshRecord, SubjectStatus } from '../../domain/types.js';
import { UPGRADED, type FoundLegacyRefresh, type RotateInput } from '../../domain/store.js';
import { refreshFromRow, sessionFromRow } from '../rows.js';
import { appExists, opt, rowOf } from './codec.js';
import type { Location, RedisConnection } from './connection.js';
import * as lua from './lua.js';
import type { Op } from './router.js';

/**
 * The rotation and its durability (SPEC §7). A rotation is one script (the compare-and-set on the
 * generation) and, on the same connection, WAIT: answered only once `minReplicas` replicas have it.
 * Rotations of one turn bound for one master share a pipeline and one WAIT (group commit).
 *
 * The script marks the new generation pending. Only its own confirmed WAIT clears the mark (its
 * caller is answered 200); if that WAIT gave up (503), the mark stays until the next rotation replaces
 * it, and the store reports the rotation `unconfirmed`: the parent then redeems for this same
 * generation whatever the grace window, each retry first confirming it (`confirmRotation`). So a
 * client that lost the 503's retry answer too can retry again; once it presented the successor and
 * that rotation was confirmed, the parent is an ordinary ancestor: reuse.
 */
export class RedisRotation {
  constructor(private readonly c: RedisConnection) {}

  private rotationArgs(input: RotateInput, rid: string): unknown[] {
    const n = input.next;
    return [
      input.expectGeneration, n.generation, n.issuedAt, n.notBefore, n.expiresAt, n.successorSealed ? n.successorSealed.toString('base64') : '',
      input.now, opt(input.lastIp), opt(input.lastUserAgent), input.horizonAt, opt(input.bindJkt ?? null), rid, this.c.options.waitMs,
      // When the router gives up on it, compared with the shard's TIME: by the engine's clock, which keeps
      // Redis's time (a host clock behind it made every rotation unconfirmed at once), or this host's when
      // that is later (an injected clock in the past).
      Math.max(input.now, Date.now()) + this.c.timeoutMs,
    ];
  }

  async rotateSession(input: RotateInput): Promise<{ rotated: boolean }> {
    const location = await this.c.locate(input.sessionId);
    if (!location) return { rotated: false };
    const rid = randomBytes(8).toString('hex');
    const keys = this.c.sessionKeys(location.base, input.sessionId);
    const rotated = Number(await this.c.run(lua.ROTATE_SESSION, keys, this.rotationArgs(input, rid), { write: true, resendable: true })) === 1;
    if (rotated) this.clearPending(location, input.sessionId, input.next.generation);
    return { rotated };
  }

  /** This rotation's own WAIT confirmed it (not waited for: a lost clear only leaves the parent redeemable a while longer). */
  private clearPending(location: Location, sessionId: string, generation: number): void {
    this.c.run(lua.CLEAR_PENDING, [`${location.base}s:${sessionId}`], [generation], { resendable: true }).catch(() => {});
  }

  /**
   * Makes the live generation's pending rotation durable before a retry of its parent is answered
   * (contract: FoundSession.rotation): a write on its key, then WAIT. While the rotation's own WAIT may
   * still be running, this waits no longer than it does (so it never confirms what its caller was told
   * failed); once that WAIT gave up, up to `waitMs`. It leaves the mark: the parent stays redeemable
   * until a later rotation is confirmed, so the client may lose this answer too and retry again.
   */
  async confirmRotation(sessionId: string, generation: number): Promise<void> {
    const location = await this.c.locate(sessionId);
    if (!location) throw new StoreUnavailableError(new Error('the session is gone'));
    const key = `${location.base}s:${sessionId}`;
    const started = Date.now();
    const [row, , serverNow] = (await this.c.run(lua.READ_SESSION, [key, `${location.base}u`], [])) as [unknown[], string, string];
    const pend = rowOf(row)?.pend;
    if (pend === undefined || Number(pend) !== generation) return;
    const remaining = Number(rowOf(row)!.pdl) - Number(serverNow) - (Date.now() - started) - 2;
    const op: Op = {
      key, script: lua.TOUCH_PENDING, args: [String(generation)], durable: true, resendable: true, waitMs: remaining > 0 ? remaining : this.c.options.waitMs,
    };
    await this.c.value(op);
  }

  // ── pre-upgrade refresh records ────────────────────────────────────────────────────────────────

  async findLegacyRefresh(id: string): Promise<FoundLegacyRefresh | null> {
    const value = await this.c.read(this.c.keys.legacyIndex(id), 'GET');
    if (typeof value !== 'string') return null;
    const [appId, base, sessionId] = value.split('\n') as [string, string, string];
    const [reply, app] = await Promise.all([
      this.c.run(lua.READ_LEGACY, [`${base}r:${id}`, `${base}s:${sessionId}`, `${base}u`], []) as Promise<[unknown[], unknown[], string, string]>,
      this.c.appState(appId),
    ]);
    const record = rowOf(reply[0]);
    const session = rowOf(reply[1]);
    if (!record || !session || !appExists(app)) return null;
    return {
      record: refreshFromRow(record), session: sessionFromRow(session),
      subjectStatus: reply[2] === '' ? null : (reply[2] as SubjectStatus), keysVersion: Number((app as unknown[])[1] ?? 0),
    };
  }

  async findLiveLegacyRefresh(sessionId: string): Promise<RefreshRecord | null> {
    const location = await this.c.locate(sessionId);
    if (!location) return null;
    const base = location.base;
    const [generation, ids] = (await Promise.all([this.c.read(`${base}s:${sessionId}`, 'HGET', ['generation']), this.c.read(`${base}rs:${sessionId}`, 'SMEMBERS')])) as [string | null, string[]];
    if (Number(generation ?? 0) !== 0) return null;
    const rows = await Promise.all(ids.map((id) => this.c.read(`${base}r:${id}`, 'HGETALL')));
    const live = rows.flatMap((flat) => {
      const row = rowOf(flat);
      return row ? [refreshFromRow(row)] : [];
    }).filter((r) => r.consumedAt === null).sort((a, b) => b.issuedAt - a.issuedAt);
    return live[0] ?? null;
  }

  async upgradeLegacy(input: { legacyId: string; locator: string | null } & RotateInput): Promise<{ rotated: boolean }> {
    const location = await this.c.locate(input.sessionId);
    if (!location) return { rotated: false };
    const locatorKey = input.locator === null ? null : this.c.keys.locatorIndex(input.locator);
    // Expiring unless the upgrade lands (see issueSession); a reader checks the session's own locator anyway.
    if (locatorKey) await this.c.write(locatorKey, 'SET', [`${location.appId}\n${location.base}\n${input.sessionId}`, 'PX', 3_600_000]);
    const rid = randomBytes(8).toString('hex');
    const keys = [...this.c.sessionKeys(location.base, input.sessionId), `${location.base}r:${input.legacyId}`];
    const rotated = Number(await this.c.run(lua.UPGRADE_LEGACY, keys, [
      input.sessionId, input.legacyId, UPGRADED, ...this.rotationArgs(input, rid), opt(input.locator),
    ], { write: true, resendable: true })) === 1;
    if (rotated && locatorKey) await this.c.write(locatorKey, 'PERSIST');
    if (rotated) this.clearPending(location, input.sessionId, input.next.generation);
    return { rotated };
  }
}
