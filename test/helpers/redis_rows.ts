import { Cluster } from 'ioredis';
import type { RedisKeys } from '../../src/store/redis/redis_store.js';

/**
 * Writes a database "as an older Rotor left it" (ConformanceDatabase.atVersion) on Redis: the suite's
 * statements are SQL INSERTs of the SQL schema's rows; the Redis store keeps those rows as hashes with
 * the same field names, in the key layout of src/store/redis, so each INSERT becomes the hash and the
 * index entries the store would have written.
 */
export async function writeRowsAtVersion(cluster: Cluster, keys: RedisKeys, version: number, statements: string[]): Promise<void> {
  const sessions = new Map<string, { appId: string; subject: string }>();
  for (const statement of statements) {
    const { table, row } = parseInsert(statement);
    const hash = (key: string) => {
      const args: string[] = [];
      for (const [k, v] of Object.entries(row)) if (v !== null) args.push(k, v);
      return cluster.hset(key, ...args);
    };
    switch (table) {
      case 'apps':
        await hash(`${keys.dir}app:${row.id}`);
        await cluster.hset(`${keys.dir}names`, row.name!, row.id!);
        break;
      case 'subjects':
        await hash(`${keys.subject(row.app_id!, row.subject!)}u`);
        await cluster.zadd(`${keys.app(row.app_id!)}subjects`, 0, row.subject!);
        break;
      case 'sessions': {
        const base = keys.subject(row.app_id!, row.subject!);
        sessions.set(row.id!, { appId: row.app_id!, subject: row.subject! });
        await cluster.set(keys.sessionIndex(row.id!), `${row.app_id}\n${base}`);
        await cluster.zadd(`${keys.app(row.app_id!)}sessions`, 0, `${row.id}\n${base}`);
        await hash(`${base}s:${row.id}`);
        await cluster.sadd(`${base}ss`, row.id!);
        // Its prune entry, written with the session as the store's scripts do.
        await cluster.zadd(keys.expiries(keys.bucketOf(base)), Number(row.horizon_at ?? 0), `${base}s:${row.id}`);
        break;
      }
      case 'refresh_tokens': {
        const owner = sessions.get(row.session_id!);
        if (!owner) throw new Error(`refresh_tokens row before its session ${row.session_id}`);
        const base = keys.subject(owner.appId, owner.subject);
        await cluster.set(keys.legacyIndex(row.id!), `${owner.appId}\n${base}\n${row.session_id}`);
        await hash(`${base}r:${row.id}`);
        await cluster.sadd(`${base}rs:${row.session_id}`, row.id!);
        break;
      }
      default:
        throw new Error(`no Redis layout for table ${table}`);
    }
  }
  await cluster.set(keys.schema, String(version));
}

/** `INSERT INTO t (a, b) VALUES ('x', 1, NULL, TRUE)` → the row as strings (TRUE/FALSE → 1/0). */
function parseInsert(sql: string): { table: string; row: Record<string, string | null> } {
  const match = /^\s*INSERT INTO (\w+)\s*\(([^)]*)\)\s*VALUES\s*\(([\s\S]*)\)\s*$/i.exec(sql);
  if (!match) throw new Error(`not a one-row INSERT: ${sql.slice(0, 80)}`);
  const columns = match[2]!.split(',').map((c) => c.trim());
  const values: (string | null)[] = [];
  const text = match[3]!;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/[\s,]/.test(c)) { i += 1; continue; }
    if (c === "'") {
      let value = '';
      i += 1;
      for (;;) {
        if (text[i] === "'" && text[i + 1] === "'") { value += "'"; i += 2; continue; }
        if (text[i] === "'") { i += 1; break; }
        value += text[i]!;
        i += 1;
      }
      values.push(value);
      continue;
    }
    const token = /^[^,\s]+/.exec(text.slice(i))![0];
    i += token.length;
    values.push(token.toUpperCase() === 'NULL' ? null : token.toUpperCase() === 'TRUE' ? '1' : token.toUpperCase() === 'FALSE' ? '0' : token);
  }
  if (values.length !== columns.length) throw new Error(`${columns.length} columns, ${values.length} values: ${sql.slice(0, 80)}`);
  return { table: match[1]!, row: Object.fromEntries(columns.map((c, k) => [c, values[k]!])) };
}
