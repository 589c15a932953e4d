import { script } from './common.js';

// Rate-limit windows ({P:rate}), the DPoP replay cache (per bucket), security events ({P:ev}) and
// activity samples ({P:act}).

/** KEYS: the window, ws (windows by start). ARGV: window start, then key, count pairs. */
export const ADD_RATE_HITS = script('add_rate_hits', `
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
return redis.call('HGETALL', KEYS[1])
`);

/** KEYS: ws, then the old windows the caller read from it. ARGV: their starts. */
export const DROP_RATE_WINDOWS = script('drop_rate_windows', `
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
if #ARGV > 0 then redis.call('ZREM', KEYS[1], unpack(ARGV)) end
return #ARGV
`);

/** First use of a proof: true. KEYS: the proof, its bucket's dpx. ARGV: expires at, PXAT. */
export const USE_DPOP_PROOF = script('use_dpop_proof', `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[1], KEYS[1])
return 1
`);

/** KEYS: dpx, then spent proofs read from it. */
export const DROP_DPOP_PROOFS = script('drop_dpop_proofs', `
for i = 2, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], KEYS[i])
end
return #KEYS - 1
`);

/** KEYS: seq, byid, byat. ARGV: at, the event's JSON without its id; the id is the next of a counter, so ids only grow. */
export const APPEND_EVENT = script('append_event', `
local id = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], id, id .. '\\n' .. ARGV[1] .. '\\n' .. ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], id)
return id
`);

/** KEYS: byid. ARGV: afterId ('' none), sinceAt ('' none), limit. Members are "id\nat\njson". */
export const LIST_EVENTS = script('list_events', `
local limit = tonumber(ARGV[3])
if ARGV[1] == '' and ARGV[2] == '' then return redis.call('ZREVRANGE', KEYS[1], 0, limit - 1) end
local after = '(' .. (ARGV[1] == '' and '0' or ARGV[1])
local since = tonumber(ARGV[2] == '' and '0' or ARGV[2])
local out = {}
local offset = 0
while #out < limit do
  local chunk = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf', 'LIMIT', offset, 500)
  if #chunk == 0 then break end
  for _, m in ipairs(chunk) do
    local at = tonumber(string.match(m, '^[^\\n]*\\n([^\\n]*)'))
    if at >= since and #out < limit then out[#out + 1] = m end
  end
  offset = offset + #chunk
end
return out
`);

/** KEYS: byat, byid. ARGV: before. */
export const PRUNE_EVENTS = script('prune_events', `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, id in ipairs(ids) do redis.call('ZREMRANGEBYSCORE', KEYS[2], id, id) end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
`);

/** KEYS: data, byat. ARGV: at, instance, data JSON; a repeated (instance, at) replaces its sample. */
export const RECORD_ACTIVITY = script('record_activity', `
local f = ARGV[1] .. '\\n' .. ARGV[2]
redis.call('HSET', KEYS[1], f, ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[1], f)
return 1
`);

/** Members "at\ninstance" with their data, from ARGV[1] on, in (at, instance) order. KEYS: byat, data. */
export const LIST_ACTIVITY = script('list_activity', `
local out = {}
for _, f in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  out[#out + 1] = f
  out[#out + 1] = redis.call('HGET', KEYS[2], f) or '{}'
end
return out
`);

/** KEYS: byat, data. ARGV: before. */
export const PRUNE_ACTIVITY = script('prune_activity', `
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, f in ipairs(old) do redis.call('HDEL', KEYS[2], f) end
if #old > 0 then redis.call('ZREM', KEYS[1], unpack(old)) end
return #old
`);
