import { script } from './common.js';

// The directory slot: schema version, apps, app keys, signing keys (KEYS named in each script).

/**
 * Versioned migrations, applied in one step (so several instances starting at once apply each once).
 * KEYS: schema, names, then every app the caller read from names. ARGV: target version, now.
 */
export const MIGRATE = script('migrate', `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = tonumber(ARGV[1])
if cur > target then return {'newer', cur} end
for v = cur + 1, target do
  if v == 3 then
    -- SPEC §1: apps of the keyless dialect profiles cannot be confidential (see the SQL migration 3).
    for i = 3, #KEYS do
      local profile = redis.call('HGET', KEYS[i], 'profile')
      if (profile == 'verifik' or profile == 'flolive' or profile == 'fib' or profile == 'abitmedia') and redis.call('HGET', KEYS[i], 'public') == '0' then
        local updated = tonumber(redis.call('HGET', KEYS[i], 'updated_at'))
        redis.call('HSET', KEYS[i], 'public', '1', 'updated_at', fmt(math.max(updated + 1, tonumber(ARGV[2]))))
      end
    end
  end
end
if target > cur then redis.call('SET', KEYS[1], target) end
return {'ok', cur}
`);

/** KEYS: names, app, ak, aks, sk, sks, skall. ARGV: app id, name, app, app key id, app key, kid, signing key. */
export const CREATE_APP = script('create_app', `
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if owner then if owner == ARGV[1] then return 1 end return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
setfields(2, ARGV[3])
setfields(3, ARGV[5])
redis.call('SADD', KEYS[4], ARGV[4])
setfields(5, ARGV[7])
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('SADD', KEYS[7], ARGV[6])
return 1
`);

/** The compare-and-set on updated_at (the row's version); a new name must be free. KEYS: app, names. */
export const UPDATE_APP = script('update_app', `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'stale' end
if redis.call('HGET', KEYS[1], 'updated_at') ~= ARGV[2] then return 'stale' end
local old = redis.call('HGET', KEYS[1], 'name')
if old ~= ARGV[3] then
  if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return 'name_taken' end
  redis.call('HDEL', KEYS[2], old)
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
end
setfields(1, ARGV[4])
return 'ok'
`);

/**
 * The app, its app keys and signing keys, in one step; its subjects and sessions become unreachable at
 * once (every read checks the app) and are pruned (the app joins `gone`). KEYS: app, names, aks, sks,
 * skall, gone, then the app keys and signing keys the caller read. ARGV: app id, how many app keys,
 * their ids, the kids.
 */
export const DELETE_APP = script('delete_app', `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local nak = tonumber(ARGV[2])
if redis.call('SCARD', KEYS[3]) ~= nak or redis.call('SCARD', KEYS[4]) ~= #KEYS - 6 - nak then return 'changed' end
for i = 1, nak do if redis.call('SISMEMBER', KEYS[3], ARGV[2 + i]) == 0 then return 'changed' end end
for i = nak + 1, #KEYS - 6 do if redis.call('SISMEMBER', KEYS[4], ARGV[2 + i]) == 0 then return 'changed' end end
redis.call('HDEL', KEYS[2], redis.call('HGET', KEYS[1], 'name'))
for i = 7, #KEYS do redis.call('DEL', KEYS[i]) end
for i = nak + 1, #KEYS - 6 do redis.call('SREM', KEYS[5], ARGV[2 + i]) end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[1])
redis.call('SADD', KEYS[6], ARGV[1])
return 1
`);

/** KEYS: ak, aks. ARGV: id, record. */
export const CREATE_APP_KEY = script('create_app_key', `
setfields(1, ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`);

/** KEYS: ak. ARGV: app id, now. */
export const REVOKE_APP_KEY = script('revoke_app_key', `
if redis.call('HGET', KEYS[1], 'app_id') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[2])
return 1
`);

/**
 * Retires the active key (if it is still the expected one), installs the next, bumps the app's key
 * version. KEYS: sks, skall, app, the new key, then the app's keys the caller read. ARGV: expected
 * active kid ('' none), retired at, publish until, new kid, new key, then the kids read.
 */
export const ROTATE_SIGNING_KEY = script('rotate_signing_key', `
if not same_set(1, 5, 6) then return 'changed' end
local active = false
for i = 5, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'active' then active = i end
end
local expect = ARGV[1]
if (active and ARGV[active + 1] or '') ~= expect then return 0 end
if active then redis.call('HSET', KEYS[active], 'state', 'retiring', 'retired_at', ARGV[2], 'publish_until', ARGV[3]) end
setfields(4, ARGV[5])
redis.call('SADD', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[4])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HINCRBY', KEYS[3], 'keys_version', 1) end
return 1
`);

/** KEYS: sk, app. ARGV: app id, now. */
export const REVOKE_SIGNING_KEY = script('revoke_signing_key', `
if redis.call('HGET', KEYS[1], 'app_id') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') == 'revoked' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'revoked', 'revoked_at', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HINCRBY', KEYS[2], 'keys_version', 1) end
return 1
`);

/** The clock of the directory slot's master: one clock for every instance on the cluster. KEYS: schema. */
export const CLOCK_NOW = script('clock_now', `
return nowms()
`);
