import { script } from './common.js';

/** KEYS: session, exp, seal. ARGV: the rotation (see rotation_args). */
export const ROTATE_SESSION = script('rotate_session', `return rotate(rotation_args(1))`);

/** After the WAIT that followed the rotation itself confirmed it (its caller is answered 200). KEYS: session. ARGV: generation. */
export const CLEAR_PENDING = script('clear_pending', `
if redis.call('HGET', KEYS[1], 'pend') == ARGV[1] then redis.call('HDEL', KEYS[1], 'pend', 'pdl', 'ck') end
return 1
`);

/**
 * A write on a pending rotation's key (so that a WAIT on this connection covers the rotation, whoever
 * wrote it): 1 with its deadline and the server's clock, or 0 when nothing of that generation is
 * pending. KEYS: session. ARGV: generation.
 */
export const TOUCH_PENDING = script('touch_pending', `
if redis.call('HGET', KEYS[1], 'pend') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'generation') ~= ARGV[1] then return {0} end
redis.call('HINCRBY', KEYS[1], 'ck', 1)
return {1, redis.call('HGET', KEYS[1], 'pdl'), fmt(nowms())}
`);

/** A pre-upgrade record, its session, its subject's status, the server's clock. KEYS: record, session, u. */
export const READ_LEGACY = script('read_legacy', `
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGET', KEYS[3], 'status') or '', fmt(nowms())}
`);

/**
 * Consumes the pre-upgrade record and starts the chain, both or neither. KEYS: session, exp, seal,
 * record. ARGV: session id, record id (for its successor: UPGRADED), UPGRADED, the rotation, locator.
 */
export const UPGRADE_LEGACY = script('upgrade_legacy', `
local a = rotation_args(4)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], 'generation') or '0') == a.next and redis.call('HGET', KEYS[1], 'rid') == a.rid then return 1 end
if redis.call('HGET', KEYS[4], 'session_id') ~= ARGV[1] or redis.call('HEXISTS', KEYS[4], 'consumed_at') == 1 then return 0 end
if rotate(a) == 0 then return 0 end
redis.call('HSET', KEYS[4], 'consumed_at', a.now, 'successor_id', ARGV[3])
if opt(ARGV[18]) and redis.call('HEXISTS', KEYS[1], 'locator') == 0 then redis.call('HSET', KEYS[1], 'locator', opt(ARGV[18])) end
return 1
`);
