import { createHash } from 'node:crypto';

/**
 * The Redis store's scripts. Each runs atomically on the one shard that holds its keys: every key a
 * script touches shares one hash tag (the directory's, or one subject's), so no script ever spans slots.
 * Scripts build the keys of their slot from the base they are given (`ARGV[1]`, ending in `}:`), and
 * name one key of that slot in KEYS[1] for routing. Hash fields are the SQL stores' column names; a
 * null is an absent field. Optional arguments are '' for null and '=' followed by the value otherwise.
 */
export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

const PRELUDE = `
local function setfields(key, json)
  local t = cjson.decode(json)
  local args = {}
  for k, v in pairs(t) do args[#args + 1] = k; args[#args + 1] = v end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
end
local function opt(v) if v == '' then return false end return string.sub(v, 2) end
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%.0f', n) end
local function revoke_all(base, reason, at)
  local n = 0
  for _, sid in ipairs(redis.call('SMEMBERS', base .. 'ss')) do
    local k = base .. 's:' .. sid
    if redis.call('EXISTS', k) == 1 and redis.call('HEXISTS', k, 'revoked_at') == 0 then
      redis.call('HSET', k, 'revoked_at', at, 'revoke_reason', reason)
      n = n + 1
    end
  end
  return n
end
local function all_of(base, set, prefix)
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', base .. set)) do
    local row = redis.call('HGETALL', base .. prefix .. id)
    if #row > 0 then out[#out + 1] = row end
  end
  return out
end
-- One rotation of a session's chain, the compare-and-set on its generation (a = the rotation's
-- arguments). 1: rotated (or this very rotation again: a resend after a lost connection); 0: lost.
-- The rotation is pending until a WAIT confirms it: 'pend' names its generation, 'pdl' (the server's
-- clock) when the WAIT that follows it gives up.
local function rotate(s, a)
  if redis.call('EXISTS', s) == 0 then return 0 end
  local gen = redis.call('HGET', s, 'generation') or '0'
  if gen == a.next and redis.call('HGET', s, 'rid') == a.rid then return 1 end
  if redis.call('HEXISTS', s, 'revoked_at') == 1 or gen ~= a.expect then return 0 end
  redis.call('HSET', s, 'generation', a.next, 'refresh_issued_at', a.issued, 'refresh_not_before', a.nbf,
    'refresh_expires_at', a.exp, 'last_renewed_at', a.now, 'rid', a.rid, 'pend', a.next, 'pdl', fmt(nowms() + tonumber(a.wait)))
  if a.sealed == '' then redis.call('HDEL', s, 'successor_sealed') else redis.call('HSET', s, 'successor_sealed', a.sealed) end
  if opt(a.ip) then redis.call('HSET', s, 'last_ip', opt(a.ip)) end
  if opt(a.ua) then redis.call('HSET', s, 'last_user_agent', opt(a.ua)) end
  if tonumber(a.horizon) > tonumber(redis.call('HGET', s, 'horizon_at') or '0') then redis.call('HSET', s, 'horizon_at', a.horizon) end
  if opt(a.jkt) and redis.call('HEXISTS', s, 'dpop_jkt') == 0 then redis.call('HSET', s, 'dpop_jkt', opt(a.jkt)) end
  return 1
end
local function rotation_args(i)
  return { expect = ARGV[i], next = ARGV[i + 1], issued = ARGV[i + 2], nbf = ARGV[i + 3], exp = ARGV[i + 4], sealed = ARGV[i + 5],
    now = ARGV[i + 6], ip = ARGV[i + 7], ua = ARGV[i + 8], horizon = ARGV[i + 9], jkt = ARGV[i + 10], rid = ARGV[i + 11], wait = ARGV[i + 12] }
end
`;

function script(name: string, body: string): LuaScript {
  const source = `${PRELUDE}\n${body}`;
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

// ── the directory slot: schema version, apps, app keys, signing keys ─────────────────────────────
// ARGV[1] is the directory's base (`P:{P}:`); KEYS[1] its schema key.

/** Versioned migrations, applied in one step (so several instances starting at once apply each once). */
export const MIGRATE = script('migrate', `
local d = ARGV[1]
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = tonumber(ARGV[2])
if cur > target then return {'newer', cur} end
for v = cur + 1, target do
  if v == 3 then
    -- SPEC §1: apps of the keyless dialect profiles cannot be confidential (see the SQL migration 3).
    local names = redis.call('HGETALL', d .. 'names')
    for i = 2, #names, 2 do
      local k = d .. 'app:' .. names[i]
      local profile = redis.call('HGET', k, 'profile')
      if (profile == 'verifik' or profile == 'flolive' or profile == 'fib' or profile == 'abitmedia') and redis.call('HGET', k, 'public') == '0' then
        local updated = tonumber(redis.call('HGET', k, 'updated_at'))
        redis.call('HSET', k, 'public', '1', 'updated_at', fmt(math.max(updated + 1, tonumber(ARGV[3]))))
      end
    end
  end
end
if target > cur then redis.call('SET', KEYS[1], target) end
return {'ok', cur}
`);

export const CREATE_APP = script('create_app', `
local d = ARGV[1]
local owner = redis.call('HGET', d .. 'names', ARGV[3])
if owner then if owner == ARGV[2] then return 1 end return 0 end
if redis.call('EXISTS', d .. 'app:' .. ARGV[2]) == 1 then return 0 end
redis.call('HSET', d .. 'names', ARGV[3], ARGV[2])
setfields(d .. 'app:' .. ARGV[2], ARGV[4])
setfields(d .. 'ak:' .. ARGV[5], ARGV[6])
redis.call('SADD', d .. 'aks:' .. ARGV[2], ARGV[5])
setfields(d .. 'sk:' .. ARGV[7], ARGV[8])
redis.call('SADD', d .. 'sks:' .. ARGV[2], ARGV[7])
redis.call('SADD', d .. 'skall', ARGV[7])
return 1
`);

export const FIND_APP_BY_NAME = script('find_app_by_name', `
local id = redis.call('HGET', ARGV[1] .. 'names', ARGV[2])
if not id then return {} end
return redis.call('HGETALL', ARGV[1] .. 'app:' .. id)
`);

export const LIST_APPS = script('list_apps', `
local out = {}
local names = redis.call('HGETALL', ARGV[1] .. 'names')
for i = 2, #names, 2 do
  local row = redis.call('HGETALL', ARGV[1] .. 'app:' .. names[i])
  if #row > 0 then out[#out + 1] = row end
end
return out
`);

/** The compare-and-set on updated_at (the row's version); a new name must be free. */
export const UPDATE_APP = script('update_app', `
local d = ARGV[1]
local k = d .. 'app:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then return 'stale' end
if redis.call('HGET', k, 'updated_at') ~= ARGV[3] then return 'stale' end
local old = redis.call('HGET', k, 'name')
if old ~= ARGV[4] then
  if redis.call('HEXISTS', d .. 'names', ARGV[4]) == 1 then return 'name_taken' end
  redis.call('HDEL', d .. 'names', old)
  redis.call('HSET', d .. 'names', ARGV[4], ARGV[2])
end
setfields(k, ARGV[5])
return 'ok'
`);

/** The app, its app keys and signing keys, in one step; its subjects and sessions become unreachable at once and are pruned. */
export const DELETE_APP = script('delete_app', `
local d = ARGV[1]
local k = d .. 'app:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HDEL', d .. 'names', redis.call('HGET', k, 'name'))
for _, id in ipairs(redis.call('SMEMBERS', d .. 'aks:' .. ARGV[2])) do redis.call('DEL', d .. 'ak:' .. id) end
for _, kid in ipairs(redis.call('SMEMBERS', d .. 'sks:' .. ARGV[2])) do
  redis.call('DEL', d .. 'sk:' .. kid)
  redis.call('SREM', d .. 'skall', kid)
end
redis.call('DEL', d .. 'aks:' .. ARGV[2], d .. 'sks:' .. ARGV[2], k)
return 1
`);

export const CREATE_APP_KEY = script('create_app_key', `
setfields(ARGV[1] .. 'ak:' .. ARGV[2], ARGV[4])
redis.call('SADD', ARGV[1] .. 'aks:' .. ARGV[3], ARGV[2])
return 1
`);

export const LIST_APP_KEYS = script('list_app_keys', `return all_of(ARGV[1], 'aks:' .. ARGV[2], 'ak:')`);

export const REVOKE_APP_KEY = script('revoke_app_key', `
local k = ARGV[1] .. 'ak:' .. ARGV[3]
if redis.call('HGET', k, 'app_id') ~= ARGV[2] or redis.call('HEXISTS', k, 'revoked_at') == 1 then return 0 end
redis.call('HSET', k, 'revoked_at', ARGV[4])
return 1
`);

export const LIST_SIGNING_KEYS = script('list_signing_keys', `return all_of(ARGV[1], 'sks:' .. ARGV[2], 'sk:')`);
export const LIST_ALL_SIGNING_KEYS = script('list_all_signing_keys', `return all_of(ARGV[1], 'skall', 'sk:')`);

/** Retires the active key (if it is still the expected one), installs the next, bumps the app's key version. */
export const ROTATE_SIGNING_KEY = script('rotate_signing_key', `
local d = ARGV[1]
local active = false
for _, kid in ipairs(redis.call('SMEMBERS', d .. 'sks:' .. ARGV[2])) do
  if redis.call('HGET', d .. 'sk:' .. kid, 'state') == 'active' then active = kid end
end
local expect = ARGV[3]
if expect == '' then expect = false end
if active ~= expect then return 0 end
if active then redis.call('HSET', d .. 'sk:' .. active, 'state', 'retiring', 'retired_at', ARGV[4], 'publish_until', ARGV[5]) end
setfields(d .. 'sk:' .. ARGV[6], ARGV[7])
redis.call('SADD', d .. 'sks:' .. ARGV[2], ARGV[6])
redis.call('SADD', d .. 'skall', ARGV[6])
if redis.call('EXISTS', d .. 'app:' .. ARGV[2]) == 1 then redis.call('HINCRBY', d .. 'app:' .. ARGV[2], 'keys_version', 1) end
return 1
`);

export const REVOKE_SIGNING_KEY = script('revoke_signing_key', `
local d = ARGV[1]
local k = d .. 'sk:' .. ARGV[3]
if redis.call('HGET', k, 'app_id') ~= ARGV[2] or redis.call('HGET', k, 'state') == 'revoked' then return 0 end
redis.call('HSET', k, 'state', 'revoked', 'revoked_at', ARGV[4])
if redis.call('EXISTS', d .. 'app:' .. ARGV[2]) == 1 then redis.call('HINCRBY', d .. 'app:' .. ARGV[2], 'keys_version', 1) end
return 1
`);

// ── one subject's slot: the subject, its sessions, their pre-upgrade refresh records ────────────
// ARGV[1] is the subject's base (`P:{P:<tag>}:`); KEYS[1] the subject's key, for routing.

/** Only the columns the patch names; a subject that ends up disabled has its live sessions revoked in the same step. */
export const PATCH_SUBJECT = script('patch_subject', `
local b = ARGV[1]
local k = b .. 'u'
local before = redis.call('HGET', k, 'status')
if not before then
  setfields(k, ARGV[4])
else
  setfields(k, ARGV[2])
  for f in string.gmatch(ARGV[3], '[^,]+') do redis.call('HDEL', k, f) end
  redis.call('HSET', k, 'updated_at', ARGV[5])
end
if redis.call('HGET', k, 'status') == 'disabled' then revoke_all(b, 'subject_disabled', ARGV[5]) end
return {before or '', redis.call('HGETALL', k)}
`);

export const DELETE_SUBJECT = script('delete_subject', `
revoke_all(ARGV[1], 'subject_deleted', ARGV[2])
return redis.call('DEL', ARGV[1] .. 'u')
`);

/** Creates the subject if new, refuses a disabled one, optionally revokes its other sessions, writes the session. */
export const ISSUE_SESSION = script('issue_session', `
local b = ARGV[1]
local k = b .. 'u'
if redis.call('EXISTS', k) == 0 then
  redis.call('HSET', k, 'app_id', ARGV[2], 'subject', ARGV[3], 'claims', ARGV[4], 'status', 'active', 'created_at', ARGV[5], 'updated_at', ARGV[5])
end
if redis.call('HGET', k, 'status') ~= 'active' then return {0} end
if ARGV[8] ~= '' then revoke_all(b, ARGV[8], ARGV[5]) end
setfields(b .. 's:' .. ARGV[6], ARGV[7])
redis.call('SADD', b .. 'ss', ARGV[6])
return {1, redis.call('HGETALL', k)}
`);

/** A session, its subject's status, and the server's clock (to tell a pending rotation's state). */
export const READ_SESSION = script('read_session', `
return {redis.call('HGETALL', ARGV[1] .. 's:' .. ARGV[2]), redis.call('HGET', ARGV[1] .. 'u', 'status') or '', fmt(nowms())}
`);

export const LIST_SESSIONS = script('list_sessions', `return all_of(ARGV[1], 'ss', 's:')`);

/** True only for the write that revoked it (or a resend of that very write, by its nonce). */
export const REVOKE_SESSION = script('revoke_session', `
local s = ARGV[1] .. 's:' .. ARGV[2]
if redis.call('EXISTS', s) == 0 then return 0 end
if redis.call('HEXISTS', s, 'revoked_at') == 1 then
  if redis.call('HGET', s, 'rvid') == ARGV[5] then return 1 end
  return 0
end
redis.call('HSET', s, 'revoked_at', ARGV[4], 'revoke_reason', ARGV[3], 'rvid', ARGV[5])
return 1
`);

export const REVOKE_SUBJECT_SESSIONS = script('revoke_subject_sessions', `return revoke_all(ARGV[1], ARGV[2], ARGV[3])`);

export const TOUCH_SESSION = script('touch_session', `
local s = ARGV[1] .. 's:' .. ARGV[2]
if redis.call('EXISTS', s) == 0 or redis.call('HEXISTS', s, 'revoked_at') == 1 then return 0 end
redis.call('HSET', s, 'last_renewed_at', ARGV[3])
if opt(ARGV[4]) then redis.call('HSET', s, 'last_ip', opt(ARGV[4])) end
if opt(ARGV[5]) then redis.call('HSET', s, 'last_user_agent', opt(ARGV[5])) end
if tonumber(ARGV[6]) > tonumber(redis.call('HGET', s, 'horizon_at') or '0') then redis.call('HSET', s, 'horizon_at', ARGV[6]) end
return 1
`);

export const ROTATE_SESSION = script('rotate_session', `return rotate(ARGV[1] .. 's:' .. ARGV[2], rotation_args(3))`);

/** After the WAIT that followed a rotation confirmed it: it is no longer pending. */
export const CLEAR_PENDING = script('clear_pending', `
local s = ARGV[1] .. 's:' .. ARGV[2]
if redis.call('HGET', s, 'pend') == ARGV[3] then redis.call('HDEL', s, 'pend', 'pdl', 'ck') end
return 1
`);

/**
 * A write on a pending rotation's key (so that a WAIT on this connection covers the rotation, whoever
 * wrote it): 1 with its deadline and the server's clock, or 0 when nothing of that generation is pending.
 */
export const TOUCH_PENDING = script('touch_pending', `
local s = ARGV[1] .. 's:' .. ARGV[2]
if redis.call('HGET', s, 'pend') ~= ARGV[3] or redis.call('HGET', s, 'generation') ~= ARGV[3] then return {0} end
redis.call('HINCRBY', s, 'ck', 1)
return {1, redis.call('HGET', s, 'pdl'), fmt(nowms())}
`);

export const READ_LEGACY = script('read_legacy', `
return {redis.call('HGETALL', ARGV[1] .. 'r:' .. ARGV[2]), redis.call('HGETALL', ARGV[1] .. 's:' .. ARGV[3]),
  redis.call('HGET', ARGV[1] .. 'u', 'status') or '', fmt(nowms())}
`);

/** The session's generation and its pre-upgrade records (the caller picks the live one). */
export const LEGACY_OF_SESSION = script('legacy_of_session', `
return {redis.call('HGET', ARGV[1] .. 's:' .. ARGV[2], 'generation') or '0', all_of(ARGV[1], 'rs:' .. ARGV[2], 'r:')}
`);

/** Consumes the pre-upgrade record and starts the chain, both or neither. */
export const UPGRADE_LEGACY = script('upgrade_legacy', `
local b = ARGV[1]
local s = b .. 's:' .. ARGV[2]
local r = b .. 'r:' .. ARGV[3]
local a = rotation_args(5)
if redis.call('EXISTS', s) == 0 then return 0 end
if (redis.call('HGET', s, 'generation') or '0') == a.next and redis.call('HGET', s, 'rid') == a.rid then return 1 end
if redis.call('HGET', r, 'session_id') ~= ARGV[2] or redis.call('HEXISTS', r, 'consumed_at') == 1 then return 0 end
if rotate(s, a) == 0 then return 0 end
redis.call('HSET', r, 'consumed_at', a.now, 'successor_id', ARGV[4])
if opt(ARGV[18]) and redis.call('HEXISTS', s, 'locator') == 0 then redis.call('HSET', s, 'locator', opt(ARGV[18])) end
return 1
`);

// ── rate-limit windows: one slot ({P:rate}) ──────────────────────────────────────────────────────

export const ADD_RATE_HITS = script('add_rate_hits', `
local w = ARGV[1] .. 'w:' .. ARGV[2]
for i = 3, #ARGV, 2 do redis.call('HINCRBY', w, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', ARGV[1] .. 'ws', ARGV[2], ARGV[2])
return redis.call('HGETALL', w)
`);

export const PRUNE_RATE = script('prune_rate', `
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
for _, w in ipairs(old) do redis.call('DEL', ARGV[1] .. w) end
if #old > 0 then redis.call('ZREM', KEYS[1], unpack(old)) end
return #old
`);

// ── pruning one session or record (found by SCAN) ────────────────────────────────────────────────

/** 1: the session is gone (dead, revoked long ago, or its app was deleted); else its old seal may be cleared. */
export const PRUNE_SESSION = script('prune_session', `
local b = ARGV[1]
local s = b .. 's:' .. ARGV[2]
if redis.call('EXISTS', s) == 0 then redis.call('SREM', b .. 'ss', ARGV[2]) return 0 end
local horizon = tonumber(redis.call('HGET', s, 'horizon_at') or '0')
local revoked = redis.call('HGET', s, 'revoked_at')
if ARGV[5] == '1' or horizon < tonumber(ARGV[3]) or (revoked and tonumber(revoked) < tonumber(ARGV[3])) then
  for _, id in ipairs(redis.call('SMEMBERS', b .. 'rs:' .. ARGV[2])) do redis.call('DEL', b .. 'r:' .. id) end
  redis.call('DEL', b .. 'rs:' .. ARGV[2], s)
  redis.call('SREM', b .. 'ss', ARGV[2])
  if ARGV[5] == '1' and redis.call('SCARD', b .. 'ss') == 0 then redis.call('DEL', b .. 'u') end
  return 1
end
-- A live token's seal is needed only while its parent may retry: the largest grace window, or while
-- its rotation is still unconfirmed (its parent may retry for it whatever the window).
if redis.call('HEXISTS', s, 'successor_sealed') == 1 and redis.call('HEXISTS', s, 'pend') == 0
  and tonumber(redis.call('HGET', s, 'refresh_issued_at') or '0') < tonumber(ARGV[4]) then
  redis.call('HDEL', s, 'successor_sealed')
end
return 0
`);

export const PRUNE_RECORD = script('prune_record', `
local r = ARGV[1] .. 'r:' .. ARGV[2]
if redis.call('EXISTS', r) == 0 then return 0 end
if tonumber(redis.call('HGET', r, 'expires_at')) <= tonumber(ARGV[3]) then
  redis.call('SREM', ARGV[1] .. 'rs:' .. (redis.call('HGET', r, 'session_id') or ''), ARGV[2])
  redis.call('DEL', r)
  return 1
end
local consumed = redis.call('HGET', r, 'consumed_at')
if consumed and tonumber(consumed) < tonumber(ARGV[4]) then redis.call('HDEL', r, 'successor_sealed') end
return 0
`);

/** A subject of a deleted app with no session left. */
export const PRUNE_SUBJECT = script('prune_subject', `
if redis.call('SCARD', ARGV[1] .. 'ss') == 0 then return redis.call('DEL', ARGV[1] .. 'u') end
return 0
`);

// ── listings, security events, activity samples ──────────────────────────────────────────────────

/** A subject and how many of its sessions are neither revoked nor past their horizon at ARGV[2]. */
export const SUBJECT_LISTING = script('subject_listing', `
local b = ARGV[1]
local live = 0
for _, sid in ipairs(redis.call('SMEMBERS', b .. 'ss')) do
  local k = b .. 's:' .. sid
  if redis.call('HEXISTS', k, 'revoked_at') == 0 and tonumber(redis.call('HGET', k, 'horizon_at') or '0') > tonumber(ARGV[2]) then live = live + 1 end
end
return {redis.call('HGETALL', b .. 'u'), live}
`);

/** ARGV: base, at, the event's JSON without its id; the id is the next of a counter, so ids only grow. */
export const APPEND_EVENT = script('append_event', `
local id = redis.call('INCR', ARGV[1] .. 'seq')
redis.call('ZADD', ARGV[1] .. 'byid', id, id .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
redis.call('ZADD', ARGV[1] .. 'byat', ARGV[2], id)
return id
`);

/** ARGV: base, afterId ('' none), sinceAt ('' none), limit. Members are "id\nat\njson". */
export const LIST_EVENTS = script('list_events', `
local b = ARGV[1]
local limit = tonumber(ARGV[4])
if ARGV[2] == '' and ARGV[3] == '' then return redis.call('ZREVRANGE', b .. 'byid', 0, limit - 1) end
local after = '(' .. (ARGV[2] == '' and '0' or ARGV[2])
local since = tonumber(ARGV[3] == '' and '0' or ARGV[3])
local out = {}
local offset = 0
while #out < limit do
  local chunk = redis.call('ZRANGEBYSCORE', b .. 'byid', after, '+inf', 'LIMIT', offset, 500)
  if #chunk == 0 then break end
  for _, m in ipairs(chunk) do
    local at = tonumber(string.match(m, '^[^\\n]*\\n([^\\n]*)'))
    if at >= since and #out < limit then out[#out + 1] = m end
  end
  offset = offset + #chunk
end
return out
`);

export const PRUNE_EVENTS = script('prune_events', `
local b = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', b .. 'byat', '-inf', '(' .. ARGV[2])
for _, id in ipairs(ids) do redis.call('ZREMRANGEBYSCORE', b .. 'byid', id, id) end
if #ids > 0 then redis.call('ZREM', b .. 'byat', unpack(ids)) end
return #ids
`);

/** ARGV: base, at, instance, data JSON; a repeated (instance, at) replaces its sample. */
export const RECORD_ACTIVITY = script('record_activity', `
local f = ARGV[2] .. '\\n' .. ARGV[3]
redis.call('HSET', ARGV[1] .. 'data', f, ARGV[4])
redis.call('ZADD', ARGV[1] .. 'byat', ARGV[2], f)
return 1
`);

/** Members "at\ninstance" with their data, from ARGV[2] on, in (at, instance) order. */
export const LIST_ACTIVITY = script('list_activity', `
local out = {}
for _, f in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1] .. 'byat', ARGV[2], '+inf')) do
  out[#out + 1] = f
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'data', f) or '{}'
end
return out
`);

export const PRUNE_ACTIVITY = script('prune_activity', `
local old = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'byat', '-inf', '(' .. ARGV[2])
for _, f in ipairs(old) do redis.call('HDEL', ARGV[1] .. 'data', f) end
if #old > 0 then redis.call('ZREM', ARGV[1] .. 'byat', unpack(old)) end
return #old
`);

export const ALL_SCRIPTS: readonly LuaScript[] = [
  MIGRATE, CREATE_APP, FIND_APP_BY_NAME, LIST_APPS, UPDATE_APP, DELETE_APP, CREATE_APP_KEY, LIST_APP_KEYS, REVOKE_APP_KEY,
  LIST_SIGNING_KEYS, LIST_ALL_SIGNING_KEYS, ROTATE_SIGNING_KEY, REVOKE_SIGNING_KEY, PATCH_SUBJECT, DELETE_SUBJECT, ISSUE_SESSION,
  READ_SESSION, LIST_SESSIONS, REVOKE_SESSION, REVOKE_SUBJECT_SESSIONS, TOUCH_SESSION, ROTATE_SESSION, CLEAR_PENDING, TOUCH_PENDING,
  READ_LEGACY, LEGACY_OF_SESSION, UPGRADE_LEGACY, ADD_RATE_HITS, PRUNE_RATE, PRUNE_SESSION, PRUNE_RECORD, PRUNE_SUBJECT,
  SUBJECT_LISTING, APPEND_EVENT, LIST_EVENTS, PRUNE_EVENTS, RECORD_ACTIVITY, LIST_ACTIVITY, PRUNE_ACTIVITY,
];
