-- Pushes a shared limiter's next free slot back after the partner itself refused a call (429 with
-- Retry-After), so that every replica pauses, not only the one that was refused.
-- KEYS[1]  the limiter key (the same one gcra.lua reserves slots on)
-- ARGV[1]  pause in ms from now
-- ARGV[2]  emission interval in ms (used for the key's expiry)
-- Returns the new theoretical arrival time in ms (Redis clock).
local pause = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local tat = tonumber(redis.call('GET', KEYS[1]))
local resume = now + pause
if tat == nil or tat < resume then
  tat = resume
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now + interval))
end
return math.ceil(tat)
