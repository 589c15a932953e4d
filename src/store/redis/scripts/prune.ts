import { script } from './common.js';

/**
 * A session its bucket's `exp` index says is due. Deleted (with its pre-upgrade records) when it is past
 * its horizon or revoked before the cutoff, or its app is gone; otherwise its entry moves to when it is
 * due. A missing session only loses its entries. KEYS: session, ss, exp, seal, u, rs, then the records
 * read from rs. ARGV: cutoff, app gone ('1'), session id, then the record ids read.
 * Reply: {1, app id, locator or ''} when deleted, {0} when not, {'changed'} when rs changed.
 */
export const PRUNE_SESSION = script('prune_session', `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], KEYS[1])
  redis.call('ZREM', KEYS[4], KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
  return {0}
end
if not same_set(6, 7, 4) then return {'changed'} end
local horizon = tonumber(redis.call('HGET', KEYS[1], 'horizon_at') or '0')
local revoked = redis.call('HGET', KEYS[1], 'revoked_at')
local cutoff = tonumber(ARGV[1])
if ARGV[2] == '1' or horizon < cutoff or (revoked and tonumber(revoked) < cutoff) then
  local app = redis.call('HGET', KEYS[1], 'app_id') or ''
  local locator = redis.call('HGET', KEYS[1], 'locator') or ''
  for i = 7, #KEYS do redis.call('DEL', KEYS[i]) end
  redis.call('DEL', KEYS[6], KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], KEYS[1])
  redis.call('ZREM', KEYS[4], KEYS[1])
  if ARGV[2] == '1' and redis.call('SCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[5]) end
  return {1, app, locator}
end
local due = horizon
if revoked and tonumber(revoked) < due then due = tonumber(revoked) end
redis.call('ZADD', KEYS[3], due, KEYS[1])
return {0}
`);

/**
 * A live token's seal is needed only while its parent may retry: the largest grace window, or while its
 * rotation is unconfirmed (its parent may retry for it whatever the window; checked again later).
 * KEYS: session, seal. ARGV: seal cutoff, now.
 */
export const PRUNE_SEAL = script('prune_seal', `
if redis.call('HEXISTS', KEYS[1], 'successor_sealed') == 0 then redis.call('ZREM', KEYS[2], KEYS[1]) return 0 end
if redis.call('HEXISTS', KEYS[1], 'pend') == 1 then redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1]) return 0 end
local issued = tonumber(redis.call('HGET', KEYS[1], 'refresh_issued_at') or '0')
if issued >= tonumber(ARGV[1]) then redis.call('ZADD', KEYS[2], issued, KEYS[1]) return 0 end
redis.call('HDEL', KEYS[1], 'successor_sealed')
redis.call('ZREM', KEYS[2], KEYS[1])
return 1
`);

/** A subject of a deleted app with no session left. KEYS: u, ss. */
export const PRUNE_SUBJECT = script('prune_subject', `
if redis.call('SCARD', KEYS[2]) == 0 then return redis.call('DEL', KEYS[1]) end
return 0
`);
