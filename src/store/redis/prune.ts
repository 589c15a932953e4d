import type { Millis } from '../../domain/types.js';
import { SEAL_KEPT_MS } from '../rows.js';
import { appExists, splitKey } from './codec.js';
import type { RedisConnection } from './connection.js';
import { BUCKETS } from './keys.js';
import * as lua from './lua.js';

/** Entries one prune takes from one index per read, and reads per index per prune: its work is bounded. */
const BATCH = 200;
const ROUNDS = 5;

/**
 * Pruning through indexes, never a keyspace scan. Each bucket's slot keeps `exp` (session key → its
 * horizon, or its revocation time once revoked) and `seal` (session key → when its sealed successor
 * was minted); the scripts that write a session write its entries in the same step, so no session is
 * without one. Prune reads only what is due (ZRANGEBYSCORE up to the cutoff, in bounded batches): a
 * due session is deleted, or its entry moves to when it will be due (its horizon grew); an entry
 * without its session is dropped. Deleted apps are listed in the directory's `gone`; their sessions
 * are walked through the app's own session list. Cross-slot pointers (session id, locator) are
 * deleted after their session; one whose session never came expires by itself (see issueSession).
 * Idempotent: instances pruning at once only repeat each other's deletions.
 */
export class RedisPruner {
  constructor(private readonly c: RedisConnection) {}

  async prune(now: Millis, options: { revokedRetention: number }): Promise<{ refreshTokens: number; sessions: number }> {
    const cutoff = now - options.revokedRetention;
    const sealCutoff = now - SEAL_KEPT_MS;
    let sessions = 0;
    await Promise.all(Array.from({ length: BUCKETS }, async (_, n) => {
      const bucket = this.c.keys.bucket(n);
      const deleted = await this.drain(this.c.keys.expiries(bucket), cutoff, (key) => this.pruneSession(key, cutoff, false));
      sessions += deleted;
      await this.drain(this.c.keys.seals(bucket), sealCutoff, (key) => this.c.run(lua.PRUNE_SEAL, [key, this.c.keys.seals(bucket)], [sealCutoff, now], { resendable: true }));
    }));
    const ofGoneApps = await this.pruneGoneApps(cutoff);
    return { refreshTokens: 0, sessions: sessions + ofGoneApps };
  }

  /** Handles the entries of `index` scored below `before`, a bounded number of batches; how many were deleted. */
  private async drain(index: string, before: number, handle: (member: string) => Promise<unknown>): Promise<number> {
    let deleted = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      const due = (await this.c.read(index, 'ZRANGEBYSCORE', ['-inf', `(${before}`, 'LIMIT', '0', BATCH])) as string[];
      for (const member of due) if ((await handle(member)) === true) deleted += 1;
      if (due.length < BATCH) break;
    }
    return deleted;
  }

  /** True when the session was deleted. */
  private async pruneSession(sessionKey: string, cutoff: number, gone: boolean): Promise<boolean> {
    const { base, id } = splitKey(sessionKey, ':s:');
    const [key, exp, seal] = this.c.sessionKeys(base, id);
    const reply = (await this.c.withMembers(`${base}rs:${id}`, (rid) => `${base}r:${rid}`, (records, rids) => this.c.run(lua.PRUNE_SESSION,
      [key, `${base}ss`, exp, seal, `${base}u`, `${base}rs:${id}`, ...records], [cutoff, gone ? '1' : '0', id, ...rids], { resendable: true }))) as [number, string?, string?];
    if (Number(reply[0]) !== 1) return false;
    this.c.forget(id);
    const [appId, locator] = [reply[1]!, reply[2]!];
    // The pointers after the record: a reader never finds a record without its pointer.
    await Promise.all([
      this.c.value({ key: this.c.keys.sessionIndex(id), command: 'DEL', args: [] }),
      locator === '' ? null : this.c.value({ key: this.c.keys.locatorIndex(locator), command: 'DEL', args: [] }),
      appId === '' ? null : this.c.value({ key: `${this.c.keys.app(appId)}sessions`, command: 'ZREM', args: [`${id}\n${base}`] }),
    ]);
    return true;
  }

  /** A deleted app's sessions and subjects, through its own lists; the app leaves `gone` once they are empty. */
  private async pruneGoneApps(cutoff: number): Promise<number> {
    const gone = `${this.c.keys.dir}gone`;
    let deleted = 0;
    for (const appId of (await this.c.read(gone, 'SMEMBERS')) as string[]) {
      // An app id is a fresh ULID: one in `gone` never comes back, but check.
      if (appExists(await this.c.appState(appId))) continue;
      const lists = this.c.keys.app(appId);
      const members = (await this.c.read(`${lists}sessions`, 'ZRANGE', ['0', BATCH - 1])) as string[];
      for (const member of members) {
        const [id, base] = member.split('\n') as [string, string];
        if (await this.pruneSession(`${base}s:${id}`, cutoff, true)) deleted += 1;
        else await this.c.value({ key: `${lists}sessions`, command: 'ZREM', args: [member] });
      }
      if (members.length === BATCH) continue;
      const subjects = (await this.c.read(`${lists}subjects`, 'ZRANGE', ['0', BATCH - 1])) as string[];
      for (const subject of subjects) {
        const base = this.c.keys.subject(appId, subject);
        await this.c.run(lua.PRUNE_SUBJECT, [`${base}u`, `${base}ss`], [], { resendable: true });
        await this.c.value({ key: `${lists}subjects`, command: 'ZREM', args: [subject] });
      }
      if (subjects.length < BATCH) await this.c.value({ key: gone, command: 'SREM', args: [appId] });
    }
    return deleted;
  }
}
