-- GCRA slot reservation for a rate limit shared by every replica.
-- KEYS[1]  the limiter key, e.g. hub:ratelimit:allio:<egress-ip>
-- ARGV[1]  emission interval in ms (1000 / rate, plus any safety spacing)
-- ARGV[2]  burst tolerance in ms (0 = requests strictly spaced by the interval)
-- ARGV[3]  longest wait in ms a caller accepts; a later slot is not reserved
-- Returns { granted (1|0), wait_ms }: when granted, the caller may send after wait_ms; when not,
-- wait_ms says how far away the next free slot is. Time comes from Redis, so every replica
-- shares one clock.
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end

local wait = tat - tolerance - now
if wait < 0 then
  wait = 0
end
if wait > max_wait then
  return { 0, math.ceil(wait) }
end

local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now + interval))
return { 1, math.ceil(wait) }
