import { StoreUnavailableError } from '../../domain/errors.js';
import type { App, AppKeyRecord, Millis, SigningKeyRecord } from '../../domain/types.js';
import { appKeyFromRow, signingKeyFromRow } from '../rows.js';
import { appColumns, appKeyColumns, appRow, fields, flatOf, rowOf, signingKeyColumns } from './codec.js';
import type { RedisConnection } from './connection.js';
import * as lua from './lua.js';

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Apps, app keys and signing keys: the directory slot. */
export class RedisCatalog {
  constructor(private readonly c: RedisConnection) {}

  private get d(): string { return this.c.keys.dir; }

  /** The hashes of a set's members, read side by side (one pipeline per node). */
  private async members(set: string, keyOf: (id: string) => string): Promise<Record<string, unknown>[]> {
    const ids = (await this.c.read(set, 'SMEMBERS')) as string[];
    const rows = await Promise.all(ids.map((id) => this.c.read(keyOf(id), 'HGETALL')));
    return rows.flatMap((flat) => {
      const row = rowOf(flatOf(flat));
      return row ? [row] : [];
    });
  }

  async createApp(input: { app: App; appKey: AppKeyRecord; signingKey: SigningKeyRecord }): Promise<{ created: boolean }> {
    const { app, appKey, signingKey } = input;
    const d = this.d;
    const created = await this.c.run(lua.CREATE_APP, [
      `${d}names`, `${d}app:${app.id}`, `${d}ak:${appKey.id}`, `${d}aks:${app.id}`, `${d}sk:${signingKey.kid}`, `${d}sks:${app.id}`, `${d}skall`,
    ], [app.id, app.name, fields(appColumns(app)), appKey.id, fields(appKeyColumns(appKey)), signingKey.kid, fields(signingKeyColumns(signingKey))], { write: true });
    return { created: Number(created) === 1 };
  }

  async findApp(ref: { id?: string; name?: string }): Promise<App | null> {
    const id = ref.id ?? (await this.c.read(`${this.d}names`, 'HGET', [ref.name ?? '']));
    if (typeof id !== 'string') return null;
    const row = rowOf(flatOf(await this.c.read(`${this.d}app:${id}`, 'HGETALL')));
    return row ? appRow(row) : null;
  }

  async listApps(): Promise<App[]> {
    const names = (await this.c.read(`${this.d}names`, 'HGETALL')) as string[];
    const ids = names.filter((_, i) => i % 2 === 1);
    const rows = await Promise.all(ids.map((id) => this.c.read(`${this.d}app:${id}`, 'HGETALL')));
    return rows.flatMap((flat) => {
      const row = rowOf(flatOf(flat));
      return row ? [appRow(row)] : [];
    }).sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  }

  async updateApp(app: App, expectUpdatedAt: Millis): Promise<{ updated: true } | { updated: false; reason: 'stale' | 'name_taken' }> {
    const columns = appColumns(app);
    const mutable = { name: app.name, public: columns.public, policy: columns.policy, description: columns.description, updated_at: columns.updated_at };
    const reply = String(await this.c.run(lua.UPDATE_APP, [`${this.d}app:${app.id}`, `${this.d}names`], [app.id, expectUpdatedAt, app.name, fields(mutable)], { write: true }));
    if (reply === 'ok') return { updated: true };
    return { updated: false, reason: reply === 'name_taken' ? 'name_taken' : 'stale' };
  }

  async deleteApp(appId: string): Promise<boolean> {
    const d = this.d;
    const fixed = [`${d}app:${appId}`, `${d}names`, `${d}aks:${appId}`, `${d}sks:${appId}`, `${d}skall`, `${d}gone`];
    for (let i = 0; i < 8; i += 1) {
      const [aks, sks] = (await Promise.all([this.c.read(`${d}aks:${appId}`, 'SMEMBERS'), this.c.read(`${d}sks:${appId}`, 'SMEMBERS')])) as [string[], string[]];
      const reply = await this.c.run(lua.DELETE_APP, [...fixed, ...aks.map((id) => `${d}ak:${id}`), ...sks.map((kid) => `${d}sk:${kid}`)],
        [appId, aks.length, ...aks, ...sks], { write: true });
      if (reply !== 'changed') return Number(reply) === 1;
    }
    throw new StoreUnavailableError(new Error('the app\'s keys kept changing while it was deleted'));
  }

  async createAppKey(key: AppKeyRecord): Promise<void> {
    await this.c.run(lua.CREATE_APP_KEY, [`${this.d}ak:${key.id}`, `${this.d}aks:${key.appId}`], [key.id, fields(appKeyColumns(key))], { write: true });
  }

  async findAppKey(id: string): Promise<AppKeyRecord | null> {
    const row = rowOf(flatOf(await this.c.read(`${this.d}ak:${id}`, 'HGETALL')));
    return row ? appKeyFromRow(row) : null;
  }

  async listAppKeys(appId: string): Promise<AppKeyRecord[]> {
    const rows = await this.members(`${this.d}aks:${appId}`, (id) => `${this.d}ak:${id}`);
    return rows.map(appKeyFromRow).sort((a, b) => byId(a.id, b.id));
  }

  async revokeAppKey(appId: string, id: string, now: Millis): Promise<boolean> {
    return Number(await this.c.run(lua.REVOKE_APP_KEY, [`${this.d}ak:${id}`], [appId, now], { write: true })) === 1;
  }

  async listSigningKeys(appId: string): Promise<SigningKeyRecord[]> {
    const rows = await this.members(`${this.d}sks:${appId}`, (kid) => `${this.d}sk:${kid}`);
    return rows.map(signingKeyFromRow).sort((a, b) => byId(a.kid, b.kid));
  }

  async findSigningKey(kid: string): Promise<SigningKeyRecord | null> {
    const row = rowOf(flatOf(await this.c.read(`${this.d}sk:${kid}`, 'HGETALL')));
    return row ? signingKeyFromRow(row) : null;
  }

  async listPublishedSigningKeys(now: Millis): Promise<SigningKeyRecord[]> {
    const rows = await this.members(`${this.d}skall`, (kid) => `${this.d}sk:${kid}`);
    return rows.map(signingKeyFromRow)
      .filter((k) => k.state === 'active' || (k.state === 'retiring' && (k.publishUntil ?? 0) > now))
      .sort((a, b) => byId(a.appId, b.appId) || byId(a.kid, b.kid));
  }

  async rotateSigningKey(input: {
    appId: string; expectActiveKid: string | null; next: SigningKeyRecord; now: Millis; publishUntil: Millis;
  }): Promise<{ rotated: boolean }> {
    const d = this.d;
    const reply = await this.c.withMembers(`${d}sks:${input.appId}`, (kid) => `${d}sk:${kid}`, (keys, kids) => this.c.run(lua.ROTATE_SIGNING_KEY, [
      `${d}sks:${input.appId}`, `${d}skall`, `${d}app:${input.appId}`, `${d}sk:${input.next.kid}`, ...keys,
    ], [input.expectActiveKid ?? '', input.now, input.publishUntil, input.next.kid, fields(signingKeyColumns(input.next)), ...kids], { write: true }));
    return { rotated: Number(reply) === 1 };
  }

  async revokeSigningKey(appId: string, kid: string, now: Millis): Promise<boolean> {
    return Number(await this.c.run(lua.REVOKE_SIGNING_KEY, [`${this.d}sk:${kid}`, `${this.d}app:${appId}`], [appId, now], { write: true })) === 1;
  }

  async signingKeysVersion(appId: string): Promise<number> {
    return Number((await this.c.read(`${this.d}app:${appId}`, 'HGET', ['keys_version'])) ?? 0);
  }
}
