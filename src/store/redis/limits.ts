import type { Millis } from '../../domain/types.js';
import type { ActivitySample, NewSecurityEventRecord, SecurityEventRecord } from '../../domain/store.js';
import { clampLimit } from '../activity_rows.js';
import { PRUNE_SKEW_MS, RATE_WINDOWS_KEPT_MS, rateTotals, storedRateKey } from '../rows.js';
import type { Row } from './codec.js';
import type { RedisConnection } from './connection.js';
import { BUCKETS } from './keys.js';
import * as lua from './lua.js';

/** How many spent entries one prune drops per index read. */
const DROP_BATCH = 500;

/** The DPoP replay cache, rate-limit counts, security events and activity samples. */
export class RedisLimits {
  constructor(private readonly c: RedisConnection) {}

  async useDpopProof(input: { key: string; expiresAt: Millis }): Promise<boolean> {
    const { key, index } = this.c.keys.dpop(input.key);
    // Expires by itself too (ten minutes past the later of its expiry and now), should pruning not reach it.
    const pxat = Math.max(input.expiresAt, Date.now()) + 600_000;
    return Number(await this.c.run(lua.USE_DPOP_PROOF, [key, index], [input.expiresAt, pxat], { write: true })) === 1;
  }

  async addRateHits(input: { windowStart: Millis; hits: { key: string; count: number }[] }): Promise<Map<string, number>> {
    const original = new Map<string, string>();
    const args: unknown[] = [input.windowStart];
    for (const { key, count } of input.hits) {
      const stored = storedRateKey(key);
      original.set(stored, key);
      args.push(stored, count);
    }
    const rate = this.c.keys.rate;
    const flat = (await this.c.run(lua.ADD_RATE_HITS, [`${rate}w:${input.windowStart}`, `${rate}ws`], args)) as unknown[];
    const rows: Row[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) rows.push({ key: flat[i], count: flat[i + 1] });
    return rateTotals(rows, original);
  }

  /** Old rate windows and spent DPoP proofs, each found through its index. */
  async prune(now: Millis): Promise<void> {
    const rate = this.c.keys.rate;
    for (;;) {
      const old = (await this.c.read(`${rate}ws`, 'ZRANGEBYSCORE', ['-inf', `(${now - RATE_WINDOWS_KEPT_MS}`, 'LIMIT', '0', DROP_BATCH])) as string[];
      if (old.length === 0) break;
      await this.c.run(lua.DROP_RATE_WINDOWS, [`${rate}ws`, ...old.map((w) => `${rate}w:${w}`)], old);
      if (old.length < DROP_BATCH) break;
    }
    await Promise.all(Array.from({ length: BUCKETS }, async (_, n) => {
      const index = `${this.c.keys.bucket(n)}dpx`;
      for (;;) {
        const spent = (await this.c.read(index, 'ZRANGEBYSCORE', ['-inf', now - PRUNE_SKEW_MS, 'LIMIT', '0', DROP_BATCH])) as string[];
        if (spent.length === 0) return;
        await this.c.run(lua.DROP_DPOP_PROOFS, [index, ...spent], []);
        if (spent.length < DROP_BATCH) return;
      }
    }));
  }

  async appendEvent(event: NewSecurityEventRecord): Promise<void> {
    const ev = this.c.keys.events;
    const body = JSON.stringify({ event: event.event, appId: event.appId, fields: event.fields });
    await this.c.run(lua.APPEND_EVENT, [`${ev}seq`, `${ev}byid`, `${ev}byat`], [event.at, body], { write: true });
  }

  async listEvents(query: { afterId: number | null; sinceAt: Millis | null; limit: number }): Promise<SecurityEventRecord[]> {
    const members = (await this.c.run(lua.LIST_EVENTS, [`${this.c.keys.events}byid`], [
      query.afterId === null ? '' : query.afterId, query.sinceAt === null ? '' : query.sinceAt, clampLimit(query.limit),
    ])) as string[];
    const events = members.map((member) => {
      const first = member.indexOf('\n');
      const second = member.indexOf('\n', first + 1);
      const body = JSON.parse(member.slice(second + 1)) as { event: string; appId: string | null; fields: SecurityEventRecord['fields'] };
      return { id: Number(member.slice(0, first)), at: Number(member.slice(first + 1, second)), event: body.event, appId: body.appId ?? null, fields: body.fields ?? {} };
    });
    return query.afterId === null && query.sinceAt === null ? events.reverse() : events;
  }

  async recordActivity(sample: ActivitySample): Promise<void> {
    const act = this.c.keys.activity;
    await this.c.run(lua.RECORD_ACTIVITY, [`${act}data`, `${act}byat`], [sample.at, sample.instance, JSON.stringify(sample.data)], { resendable: false });
  }

  async listActivity(since: Millis): Promise<ActivitySample[]> {
    const act = this.c.keys.activity;
    const flat = (await this.c.run(lua.LIST_ACTIVITY, [`${act}byat`, `${act}data`], [since])) as string[];
    const out: ActivitySample[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = flat[i]!;
      const cut = field.indexOf('\n');
      let data: Record<string, unknown> = {};
      try {
        const parsed = JSON.parse(flat[i + 1]!) as unknown;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) data = parsed as Record<string, unknown>;
      } catch { /* a sample that is not JSON reads as empty */ }
      out.push({ at: Number(field.slice(0, cut)), instance: field.slice(cut + 1), data });
    }
    return out;
  }

  async pruneActivity(input: { eventsBefore: Millis; samplesBefore: Millis }): Promise<{ events: number; samples: number }> {
    const ev = this.c.keys.events;
    const act = this.c.keys.activity;
    const [events, samples] = await Promise.all([
      this.c.run(lua.PRUNE_EVENTS, [`${ev}byat`, `${ev}byid`], [input.eventsBefore], { resendable: false }),
      this.c.run(lua.PRUNE_ACTIVITY, [`${act}byat`, `${act}data`], [input.samplesBefore], { resendable: false }),
    ]);
    return { events: Number(events), samples: Number(samples) };
  }
}
