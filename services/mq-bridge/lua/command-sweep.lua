-- Times out every pending open command whose deadline has passed, at most ARGV[2] per call. Every
-- api replica sweeps; the script is atomic, so each command is timed out by exactly one sweep.
-- KEYS[1]  the sorted set of pending commands' deadlines (score: deadline ms, member: command id)
-- ARGV[1]  the prefix of command keys (the key is ARGV[1] .. id; one Redis, not a cluster)
-- ARGV[2]  the most commands to time out in this call
-- ARGV[3]  the prefix of tenant event channels: each timeout is published as the tenant's
--          `command.result` event on ARGV[3] .. tenant
-- ARGV[4]  the event time (ISO 8601)
-- Returns a flat list: id, tenant, service for each command timed out now.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(due) do
  local key = ARGV[1] .. id
  local f = redis.call('HMGET', key, 'status', 'tenant', 'service')
  if f[1] == 'pending' then
    redis.call('HSET', key, 'status', 'timeout', 'completedAt', now)
    redis.call('PUBLISH', ARGV[3] .. f[2], cjson.encode({type = 'command.result', at = ARGV[4], commandId = id, service = f[3], status = 'timeout'}))
    table.insert(out, id)
    table.insert(out, f[2])
    table.insert(out, f[3])
  end
  redis.call('ZREM', KEYS[1], id)
end
return out
