-- Settles a pending open command once: with the partner's outcome, or as timed out.
-- KEYS[1]  the command's key
-- KEYS[2]  the sorted set of pending commands' deadlines
-- ARGV[1]  'opened' | 'failed' (a reply) or 'timeout' (the deadline check)
-- ARGV[2]  reason ('' for none)
-- ARGV[3]  the replying partner ('' for the timeout check)
-- ARGV[4]  the service named by the reply ('' for the timeout check)
-- ARGV[5]  the command's id (its member in KEYS[2])
-- ARGV[6]  the prefix of tenant event channels ('' publishes nothing; the channel is ARGV[6] .. tenant)
-- ARGV[7]  the event time (ISO 8601)
-- When this call settles the command, it also publishes the tenant's `command.result` event, so the
-- event goes out exactly when the outcome is decided, in the same round trip.
-- Returns {result, createdAtMs, nowMs, tenant, service}; result is
--   'settled'            this call decided the outcome
--   'unknown'            no such command (never created, or expired from the cache)
--   'mismatched_partner' the reply comes from another partner than the one asked
--   'mismatched_service' the reply names another service than the command's
--   'duplicate'          already settled with a reply
--   'late'               a reply after the deadline (the command is, or now becomes, 'timeout')
--   'early'              a timeout check before the deadline (nothing changes)
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', 0, 0, '', ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'status', 'deadline', 'createdAt', 'partner', 'service', 'tenant')
local status, deadline, created, partner, service, tenant = f[1], tonumber(f[2]), tonumber(f[3]), f[4], f[5], f[6]
local function answer(result) return {result, created, now, tenant, service} end
if ARGV[3] ~= '' and ARGV[3] ~= partner then return answer('mismatched_partner') end
if ARGV[4] ~= '' and ARGV[4] ~= service then return answer('mismatched_service') end
if status ~= 'pending' then
  if status == 'timeout' then return answer('late') end
  return answer('duplicate')
end
-- From here on the command leaves `pending`, so the sweep need not look at it again.
redis.call('ZREM', KEYS[2], ARGV[5])
if now > deadline then
  redis.call('HSET', KEYS[1], 'status', 'timeout', 'completedAt', now)
  if ARGV[6] ~= '' then
    redis.call('PUBLISH', ARGV[6] .. tenant, cjson.encode({type = 'command.result', at = ARGV[7], commandId = ARGV[5], service = service, status = 'timeout'}))
  end
  if ARGV[1] == 'timeout' then return answer('settled') end
  return answer('late')
end
if ARGV[1] == 'timeout' then
  redis.call('ZADD', KEYS[2], deadline, ARGV[5])
  return answer('early')
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'reason', ARGV[2], 'completedAt', now)
if ARGV[6] ~= '' then
  local event = {type = 'command.result', at = ARGV[7], commandId = ARGV[5], service = service, status = ARGV[1]}
  if ARGV[2] ~= '' then event.reason = ARGV[2] end
  redis.call('PUBLISH', ARGV[6] .. tenant, cjson.encode(event))
end
return answer('settled')
