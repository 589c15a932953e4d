import { script } from './common.js';

// A subject's keys in its bucket's slot: `u` (the subject), `ss` (its session ids), `s:<id>` (a
// session), and the bucket's prune index `exp` (session key → horizon, or revocation time).

/**
 * Only the columns the patch names; a subject that ends up disabled has its live sessions revoked in
 * the same step. KEYS: u, ss, exp, then the sessions read from ss. ARGV: set, cleared (a,b), the
 * record if new, now, then the session ids read.
 */
export const PATCH_SUBJECT = script('patch_subject', `
if not same_set(2, 4, 5) then return 'changed' end
local before = redis.call('HGET', KEYS[1], 'status')
if not before then
  setfields(1, ARGV[3])
else
  setfields(1, ARGV[1])
  for f in string.gmatch(ARGV[2], '[^,]+') do redis.call('HDEL', KEYS[1], f) end
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
end
if redis.call('HGET', KEYS[1], 'status') == 'disabled' then revoke_from(4, 3, 'subject_disabled', ARGV[4]) end
return {before or '', redis.call('HGETALL', KEYS[1])}
`);

/** KEYS: u, ss, exp, then the sessions read from ss. ARGV: now, then their ids. */
export const DELETE_SUBJECT = script('delete_subject', `
if not same_set(2, 4, 2) then return 'changed' end
revoke_from(4, 3, 'subject_deleted', ARGV[1])
return redis.call('DEL', KEYS[1])
`);

/**
 * Creates the subject if new, refuses a disabled one, optionally revokes its other sessions, writes the
 * session and its prune entry (in this same step, so no session is ever without one). KEYS: u, ss, the
 * session, exp, then (revoking others) the sessions read from ss. ARGV: app id, subject, claims, now,
 * session id, session, revoke reason ('' none), horizon, then the session ids read.
 */
export const ISSUE_SESSION = script('issue_session', `
if ARGV[7] ~= '' and not same_set(2, 5, 9) then return {'changed'} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'app_id', ARGV[1], 'subject', ARGV[2], 'claims', ARGV[3], 'status', 'active', 'created_at', ARGV[4], 'updated_at', ARGV[4])
end
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return {0} end
if ARGV[7] ~= '' then revoke_from(5, 4, ARGV[7], ARGV[4]) end
setfields(3, ARGV[6])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[8], KEYS[3])
return {1, redis.call('HGETALL', KEYS[1])}
`);

/** A session, its subject's status, and the server's clock (to tell a pending rotation's state). KEYS: session, u. */
export const READ_SESSION = script('read_session', `
return {redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], 'status') or '', fmt(nowms())}
`);

/** True only for the write that revoked it (or a resend of that very write, by its nonce). KEYS: session, exp. ARGV: reason, now, nonce. */
export const REVOKE_SESSION = script('revoke_session', `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then
  if redis.call('HGET', KEYS[1], 'rvid') == ARGV[3] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[2], 'revoke_reason', ARGV[1], 'rvid', ARGV[3])
redis.call('ZADD', KEYS[2], 'LT', ARGV[2], KEYS[1])
return 1
`);

/** KEYS: ss, exp, then the sessions read from ss. ARGV: reason, now, then their ids. */
export const REVOKE_SUBJECT_SESSIONS = script('revoke_subject_sessions', `
if not same_set(1, 3, 3) then return 'changed' end
return revoke_from(3, 2, ARGV[1], ARGV[2])
`);

/** KEYS: session, exp. ARGV: now, ip, user agent, horizon. */
export const TOUCH_SESSION = script('touch_session', `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'last_renewed_at', ARGV[1])
if opt(ARGV[2]) then redis.call('HSET', KEYS[1], 'last_ip', opt(ARGV[2])) end
if opt(ARGV[3]) then redis.call('HSET', KEYS[1], 'last_user_agent', opt(ARGV[3])) end
if tonumber(ARGV[4]) > tonumber(redis.call('HGET', KEYS[1], 'horizon_at') or '0') then
  redis.call('HSET', KEYS[1], 'horizon_at', ARGV[4])
  redis.call('ZADD', KEYS[2], 'GT', ARGV[4], KEYS[1])
end
return 1
`);
