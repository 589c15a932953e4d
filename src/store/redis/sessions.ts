import { randomBytes } from 'node:crypto';
import type { Millis, Session, Subject, SubjectStatus } from '../../domain/types.js';
import type { FoundSession, SubjectColumns, SubjectListing, TouchInput } from '../../domain/store.js';
import { clampLimit } from '../activity_rows.js';
import { sessionFromRow, subjectFromRow } from '../rows.js';
import { appExists, fields, flatOf, opt, rowOf, sessionColumns } from './codec.js';
import type { Location, RedisConnection } from './connection.js';
import * as lua from './lua.js';

/** An index entry lives this long unless the write it announces completes and makes it permanent. */
const INDEX_TTL_MS = 3_600_000;

/** Subjects and sessions: each subject's keys share its bucket's slot. */
export class RedisSessions {
  constructor(private readonly c: RedisConnection) {}

  /** A script on a subject's sessions (`first`: its keys before them), read again while the set changes. */
  private onSessions(base: string, script: lua.LuaScript, first: string[], args: unknown[]): Promise<unknown> {
    return this.c.withMembers(`${base}ss`, (id) => `${base}s:${id}`, (keys, ids) => this.c.run(script, [...first, ...keys], [...args, ...ids], { write: true }));
  }

  private exp(base: string): string {
    return this.c.keys.expiries(this.c.keys.bucketOf(base));
  }

  async findSubject(appId: string, subject: string): Promise<Subject | null> {
    const base = this.c.keys.subject(appId, subject);
    const [reply, app] = await Promise.all([this.c.read(`${base}u`, 'HGETALL'), this.c.appState(appId)]);
    const row = rowOf(flatOf(reply));
    return row && appExists(app) ? subjectFromRow(row) : null;
  }

  async patchSubject(input: { appId: string; subject: string; set: SubjectColumns; now: Millis }): Promise<{
    subject: Subject; previousStatus: SubjectStatus | null;
  }> {
    const { appId, subject, set, now } = input;
    const base = this.c.keys.subject(appId, subject);
    const columns: Record<string, unknown> = {};
    const cleared: string[] = [];
    const put = (column: string, value: unknown) => (value === null ? cleared.push(column) : (columns[column] = value));
    if (set.claims !== undefined) put('claims', JSON.stringify(set.claims));
    if (set.status !== undefined) put('status', set.status);
    if (set.passwordHash !== undefined) put('password_hash', set.passwordHash);
    if (set.ed25519PublicKey !== undefined) put('ed25519_public_key', set.ed25519PublicKey);
    const created = {
      app_id: appId, subject, claims: JSON.stringify(set.claims ?? {}), status: set.status ?? 'active', password_hash: set.passwordHash ?? null,
      ed25519_public_key: set.ed25519PublicKey ?? null, created_at: now, updated_at: now,
    };
    await this.c.write(`${this.c.keys.app(appId)}subjects`, 'ZADD', ['0', subject]);
    const [before, flat] = (await this.onSessions(base, lua.PATCH_SUBJECT, [`${base}u`, `${base}ss`, this.exp(base)],
      [fields(columns), cleared.join(','), fields(created), now])) as [string, unknown[]];
    return { subject: subjectFromRow(rowOf(flat)!), previousStatus: before === '' ? null : (before as SubjectStatus) };
  }

  async deleteSubject(appId: string, subject: string, now: Millis): Promise<boolean> {
    const base = this.c.keys.subject(appId, subject);
    const deleted = Number(await this.onSessions(base, lua.DELETE_SUBJECT, [`${base}u`, `${base}ss`, this.exp(base)], [now])) === 1;
    // The subject's sessions stay (revoked) until pruned, so it leaves the app's list of subjects only.
    await this.c.write(`${this.c.keys.app(appId)}subjects`, 'ZREM', [subject]);
    return deleted;
  }

  async issueSession(input: {
    session: Session; newSubjectClaims: Record<string, unknown>; revokeOthers?: string;
  }): Promise<{ issued: true; subject: Subject } | { issued: false; reason: 'subject_disabled' }> {
    const s = input.session;
    const base = this.c.keys.subject(s.appId, s.subject);
    const app = this.c.keys.app(s.appId);
    // The indexes first, expiring by themselves: a reader that finds one without its session finds
    // nothing, and one whose session never came (a crash, a refusal) goes within the hour.
    const pointers = [
      [this.c.keys.sessionIndex(s.id), `${s.appId}\n${base}`],
      ...(s.locator === null ? [] : [[this.c.keys.locatorIndex(s.locator), `${s.appId}\n${base}\n${s.id}`]]),
    ] as [string, string][];
    await Promise.all([
      ...pointers.map(([key, value]) => this.c.write(key, 'SET', [value, 'PX', INDEX_TTL_MS])),
      this.c.write(`${app}subjects`, 'ZADD', ['0', s.subject]),
      this.c.write(`${app}sessions`, 'ZADD', ['0', `${s.id}\n${base}`]),
    ]);
    const first = [`${base}u`, `${base}ss`, `${base}s:${s.id}`, this.exp(base)];
    const args = [s.appId, s.subject, JSON.stringify(input.newSubjectClaims), s.createdAt, s.id, fields(sessionColumns(s)), input.revokeOthers ?? '', s.horizonAt];
    const reply = (input.revokeOthers
      ? await this.onSessions(base, lua.ISSUE_SESSION, first, args)
      : await this.c.run(lua.ISSUE_SESSION, first, args, { write: true })) as [number, unknown[]?];
    if (Number(reply[0]) !== 1) return { issued: false, reason: 'subject_disabled' };
    // Answered only once its indexes are permanent: an answered session is always reachable.
    await Promise.all(pointers.map(([key]) => this.c.write(key, 'PERSIST')));
    this.c.remember(s.id, { appId: s.appId, base });
    return { issued: true, subject: subjectFromRow(rowOf(reply[1])!) };
  }

  async findSession(id: string): Promise<FoundSession | null> {
    const location = await this.c.locate(id);
    return location ? this.readSession(location, id) : null;
  }

  async findSessionByLocator(locator: string): Promise<FoundSession | null> {
    const value = await this.c.read(this.c.keys.locatorIndex(locator), 'GET');
    if (typeof value !== 'string') return null;
    const [appId, base, id] = value.split('\n') as [string, string, string];
    const found = await this.readSession({ appId, base }, id);
    return found && found.session.locator === locator ? found : null;
  }

  /**
   * The session, its subject's status and its app's key version: two reads on two shards, side by
   * side. A rotation still marked pending is `in_flight` while its own WAIT may answer, `unconfirmed` after.
   */
  async readSession(location: Location, id: string): Promise<FoundSession | null> {
    const [reply, app] = await Promise.all([
      this.c.run(lua.READ_SESSION, [`${location.base}s:${id}`, `${location.base}u`], []) as Promise<[unknown[], string, string]>,
      this.c.appState(location.appId),
    ]);
    const row = rowOf(reply[0]);
    if (!row || !appExists(app)) return null;
    const found: FoundSession = {
      session: sessionFromRow(row),
      subjectStatus: reply[1] === '' ? null : (reply[1] as SubjectStatus),
      keysVersion: Number((app as unknown[])[1] ?? 0),
    };
    const pending = row.pend === undefined ? null : Number(row.pend);
    if (pending !== null && pending === found.session.refresh?.generation) {
      found.rotation = Number(reply[2]) < Number(row.pdl) ? 'in_flight' : 'unconfirmed';
    }
    return found;
  }

  async listSessions(appId: string, subject: string): Promise<Session[]> {
    const base = this.c.keys.subject(appId, subject);
    const [ids, app] = await Promise.all([this.c.read(`${base}ss`, 'SMEMBERS') as Promise<string[]>, this.c.appState(appId)]);
    if (!appExists(app)) return [];
    const rows = await Promise.all(ids.map((id) => this.c.read(`${base}s:${id}`, 'HGETALL')));
    return rows.flatMap((flat) => {
      const row = rowOf(flatOf(flat));
      return row ? [sessionFromRow(row)] : [];
    }).sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  async revokeSession(sessionId: string, reason: string, now: Millis): Promise<boolean> {
    const location = await this.c.locate(sessionId);
    if (!location) return false;
    const nonce = randomBytes(8).toString('hex');
    return Number(await this.c.run(lua.REVOKE_SESSION, [`${location.base}s:${sessionId}`, this.exp(location.base)], [reason, now, nonce],
      { write: true, resendable: true })) === 1;
  }

  async revokeSubjectSessions(appId: string, subject: string, reason: string, now: Millis): Promise<number> {
    const base = this.c.keys.subject(appId, subject);
    return Number(await this.onSessions(base, lua.REVOKE_SUBJECT_SESSIONS, [`${base}ss`, this.exp(base)], [reason, now]));
  }

  async touchSession(input: TouchInput): Promise<boolean> {
    const location = await this.c.locate(input.sessionId);
    if (!location) return false;
    return Number(await this.c.run(lua.TOUCH_SESSION, [`${location.base}s:${input.sessionId}`, this.exp(location.base)], [
      input.now, opt(input.lastIp), opt(input.lastUserAgent), input.horizonAt,
    ], { write: true, resendable: true })) === 1;
  }

  async listSubjects(appId: string, page: { after: string | null; limit: number; now: Millis }): Promise<SubjectListing[]> {
    const limit = clampLimit(page.limit);
    const out: SubjectListing[] = [];
    let after = page.after;
    if (!appExists(await this.c.appState(appId))) return [];
    while (out.length < limit) {
      const names = (await this.c.read(`${this.c.keys.app(appId)}subjects`, 'ZRANGEBYLEX', [
        after === null ? '-' : `(${after}`, '+', 'LIMIT', '0', String(limit - out.length),
      ])) as string[];
      if (names.length === 0) break;
      const listed = await Promise.all(names.map(async (subject) => {
        const base = this.c.keys.subject(appId, subject);
        const [flat, ids] = (await Promise.all([this.c.read(`${base}u`, 'HGETALL'), this.c.read(`${base}ss`, 'SMEMBERS')])) as [unknown[], string[]];
        const row = rowOf(flat);
        // An index entry whose subject never came (or was deleted) lists nothing.
        if (!row) return null;
        const states = (await Promise.all(ids.map((id) => this.c.read(`${base}s:${id}`, 'HMGET', ['revoked_at', 'horizon_at'])))) as (string | null)[][];
        const live = states.filter(([revoked, horizon]) => revoked === null && horizon !== null && Number(horizon) > page.now).length;
        return { subject: subjectFromRow(row), liveSessions: live };
      }));
      for (const entry of listed) if (entry) out.push(entry);
      after = names[names.length - 1]!;
    }
    return out;
  }

  async listAppSessions(appId: string, page: { subject: string | null; before: string | null; limit: number }): Promise<Session[]> {
    const limit = clampLimit(page.limit);
    if (!appExists(await this.c.appState(appId))) return [];
    if (page.subject !== null) {
      const all = await this.listSessions(appId, page.subject);
      return all.filter((s) => page.before === null || s.id < page.before).slice(0, limit);
    }
    const out: Session[] = [];
    let before = page.before;
    while (out.length < limit) {
      const members = (await this.c.read(`${this.c.keys.app(appId)}sessions`, 'ZREVRANGEBYLEX', [
        before === null ? '+' : `(${before}`, '-', 'LIMIT', '0', String(limit - out.length),
      ])) as string[];
      if (members.length === 0) break;
      const rows = await Promise.all(members.map((member) => {
        const [id, base] = member.split('\n') as [string, string];
        return this.c.read(`${base}s:${id}`, 'HGETALL');
      }));
      for (const flat of rows) {
        const row = rowOf(flatOf(flat));
        if (row) out.push(sessionFromRow(row));
      }
      before = members[members.length - 1]!.split('\n')[0]!;
    }
    return out;
  }
}
