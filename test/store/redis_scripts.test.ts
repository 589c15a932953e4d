import { describe, expect, it } from 'vitest';
import { ALL_SCRIPTS } from '../../src/store/redis/lua.js';

/**
 * Redis Cluster's rule for scripts: every key a script touches is passed in KEYS, so the cluster can
 * check the slot (and an ACL the key) before the script runs. A key built inside a script from a
 * prefix breaks under slot migration and ACLs without any test on one node noticing, so this reads
 * every script's source: each `redis.call`'s key arguments must be `KEYS[…]` literally.
 */

/** Which arguments (after the command name) are keys; a command missing here fails the check. */
const KEY_ARGS: Record<string, 'none' | 'first' | 'all'> = {
  TIME: 'none',
  DEL: 'all', EXISTS: 'all', UNLINK: 'all',
  GET: 'first', SET: 'first', INCR: 'first',
  HGET: 'first', HSET: 'first', HDEL: 'first', HEXISTS: 'first', HGETALL: 'first', HINCRBY: 'first', HMGET: 'first',
  SADD: 'first', SREM: 'first', SMEMBERS: 'first', SCARD: 'first', SISMEMBER: 'first',
  ZADD: 'first', ZREM: 'first', ZRANGEBYSCORE: 'first', ZREVRANGE: 'first', ZREMRANGEBYSCORE: 'first',
};

/** The argument texts of every redis.call / redis.pcall in `source`, split at top-level commas. */
function calls(source: string): string[][] {
  const out: string[][] = [];
  const start = /redis\.p?call\s*\(/g;
  for (let m = start.exec(source); m; m = start.exec(source)) {
    const args: string[] = [];
    let depth = 0;
    let quote: string | null = null;
    let current = '';
    for (let i = m.index + m[0].length; i < source.length; i += 1) {
      const c = source[i]!;
      if (quote) {
        current += c;
        if (c === '\\') current += source[++i];
        else if (c === quote) quote = null;
        continue;
      }
      if (c === "'" || c === '"') quote = c;
      if (c === '(' || c === '{' || c === '[') depth += 1;
      if (c === ')' || c === '}' || c === ']') {
        if (depth === 0) break;
        depth -= 1;
      }
      if (c === ',' && depth === 0) {
        args.push(current.trim());
        current = '';
        continue;
      }
      current += c;
    }
    args.push(current.trim());
    out.push(args);
  }
  return out;
}

/** What is wrong with a script's key arguments (empty: nothing). */
function undeclaredKeys(source: string): string[] {
  const problems: string[] = [];
  for (const [command, ...args] of calls(source)) {
    const name = /^'([A-Za-z]+)'$/.exec(command ?? '')?.[1]?.toUpperCase();
    const kind = name ? KEY_ARGS[name] : undefined;
    if (!name || !kind) {
      problems.push(`redis.call(${command}, …): a command this check does not know; add it to KEY_ARGS`);
      continue;
    }
    const keys = kind === 'none' ? [] : kind === 'first' ? args.slice(0, 1) : args;
    for (const key of keys) if (!/^KEYS\[[^\]]+\]$/.test(key)) problems.push(`${name} on ${key}`);
  }
  return problems;
}

describe('Redis scripts declare every key they touch', () => {
  it.each(ALL_SCRIPTS.map((s) => [s.name, s.source]))('%s: every key argument is a KEYS[…]', (_name, source) => {
    expect(calls(source).length).toBeGreaterThan(0);
    expect(undeclaredKeys(source)).toEqual([]);
  });

  it('the check fails on a key built inside a script, a key passed in ARGV, and an unknown command', () => {
    expect(undeclaredKeys(`redis.call('HGET', ARGV[1] .. 's:' .. ARGV[2], 'generation')`)).toHaveLength(1);
    expect(undeclaredKeys(`local k = KEYS[1]\nredis.call('DEL', KEYS[1], k)`)).toEqual(['DEL on k']);
    expect(undeclaredKeys(`redis.call('DEL', unpack(ARGV))`)).toHaveLength(1);
    expect(undeclaredKeys(`redis.call('RENAME', KEYS[1], KEYS[2])`)).toHaveLength(1);
    expect(undeclaredKeys(`redis.call('HSET', KEYS[i], 'a', cjson.decode(ARGV[1])['x'])`)).toEqual([]);
  });

  it('every script is listed once', () => {
    const names = ALL_SCRIPTS.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['rotate_session', 'issue_session', 'prune_session', 'delete_app', 'migrate']));
  });
});
