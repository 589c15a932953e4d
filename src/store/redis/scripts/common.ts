import { createHash } from 'node:crypto';

/**
 * The Redis store's scripts. Each runs atomically on one shard, and touches only keys it was given in
 * KEYS (the Redis Cluster rule: the cluster checks declared keys before running a script, so a slot
 * migration or an ACL refuses the script whole instead of stopping it half-way). All of a script's keys
 * share one hash tag. Where a script must act on a set's members (a subject's sessions, an app's keys),
 * the caller reads the set first and passes the members' keys; the script checks the set is unchanged
 * and otherwise answers 'changed' for the caller to read again. Hash fields are the SQL stores' column
 * names; a null is an absent field. Optional arguments are '' for null and '=' and the value otherwise.
 * test/store/redis_scripts.test.ts checks that every key argument is a KEYS[…].
 */
export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

const PRELUDE = `
local function setfields(ki, json)
  local t = cjson.decode(json)
  local args = {}
  for k, v in pairs(t) do args[#args + 1] = k; args[#args + 1] = v end
  if #args > 0 then redis.call('HSET', KEYS[ki], unpack(args)) end
end
local function opt(v) if v == '' then return false end return string.sub(v, 2) end
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%.0f', n) end
-- The set KEYS[set] still holds exactly the ids ARGV[afirst..] (one per key KEYS[first..]) the caller read.
local function same_set(set, first, afirst)
  local n = #KEYS - first + 1
  if redis.call('SCARD', KEYS[set]) ~= n then return false end
  for i = 0, n - 1 do
    if redis.call('SISMEMBER', KEYS[set], ARGV[afirst + i]) == 0 then return false end
  end
  return true
end
-- Revokes the live sessions among KEYS[first..]; their prune entries move to the revocation time.
local function revoke_from(first, exp, reason, at)
  local n = 0
  for i = first, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('HEXISTS', KEYS[i], 'revoked_at') == 0 then
      redis.call('HSET', KEYS[i], 'revoked_at', at, 'revoke_reason', reason)
      redis.call('ZADD', KEYS[exp], 'LT', at, KEYS[i])
      n = n + 1
    end
  end
  return n
end
-- One rotation of the session KEYS[1] (KEYS[2]: its bucket's expiries, KEYS[3]: its seals), the
-- compare-and-set on its generation. 1: rotated (or this very rotation again: a resend); 0: lost.
-- 'pend' marks the generation whose parent stays redeemable for it whatever the grace window: only the
-- store's confirmation of this rotation's own WAIT clears it (CLEAR_PENDING), or the next rotation
-- replaces it; 'pdl' (the server's clock) is when this rotation's WAIT gives up, or the caller's own
-- deadline if sooner: a script that runs late (its node stalled, the caller already answered 503) is
-- unconfirmed at once, never in flight.
local function rotate(a)
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  local gen = redis.call('HGET', KEYS[1], 'generation') or '0'
  if gen == a.next and redis.call('HGET', KEYS[1], 'rid') == a.rid then return 1 end
  if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 or gen ~= a.expect then return 0 end
  redis.call('HSET', KEYS[1], 'generation', a.next, 'refresh_issued_at', a.issued, 'refresh_not_before', a.nbf,
    'refresh_expires_at', a.exp, 'last_renewed_at', a.now, 'rid', a.rid, 'pend', a.next, 'pdl', fmt(math.min(nowms() + tonumber(a.wait), tonumber(a.dl))))
  if a.sealed == '' then
    redis.call('HDEL', KEYS[1], 'successor_sealed')
    redis.call('ZREM', KEYS[3], KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'successor_sealed', a.sealed)
    redis.call('ZADD', KEYS[3], a.issued, KEYS[1])
  end
  if opt(a.ip) then redis.call('HSET', KEYS[1], 'last_ip', opt(a.ip)) end
  if opt(a.ua) then redis.call('HSET', KEYS[1], 'last_user_agent', opt(a.ua)) end
  if tonumber(a.horizon) > tonumber(redis.call('HGET', KEYS[1], 'horizon_at') or '0') then
    redis.call('HSET', KEYS[1], 'horizon_at', a.horizon)
    redis.call('ZADD', KEYS[2], 'GT', a.horizon, KEYS[1])
  end
  if opt(a.jkt) and redis.call('HEXISTS', KEYS[1], 'dpop_jkt') == 0 then redis.call('HSET', KEYS[1], 'dpop_jkt', opt(a.jkt)) end
  return 1
end
local function rotation_args(i)
  return { expect = ARGV[i], next = ARGV[i + 1], issued = ARGV[i + 2], nbf = ARGV[i + 3], exp = ARGV[i + 4], sealed = ARGV[i + 5],
    now = ARGV[i + 6], ip = ARGV[i + 7], ua = ARGV[i + 8], horizon = ARGV[i + 9], jkt = ARGV[i + 10], rid = ARGV[i + 11], wait = ARGV[i + 12],
    dl = ARGV[i + 13] }
end
`;

export function script(name: string, body: string): LuaScript {
  const source = `${PRELUDE}\n${body}`;
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}
