-- Pauses a shared quota after the partner itself refused a call (429 with Retry-After), so that
-- every replica pauses, not only the one that was refused.
-- KEYS[1]  the pause key (the one window.lua reads)
-- ARGV[1]  pause in ms from now
-- Returns the time the pause ends, in ms (Redis clock).
-- now_ms   the Redis clock in ms, from the prelude that loadLua (core/redis.ts) puts in front
local pause = tonumber(ARGV[1])

local resume = now_ms + pause
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < resume then
  redis.call('SET', KEYS[1], string.format('%.3f', resume), 'PX', math.ceil(pause) + 1)
  return math.ceil(resume)
end
return math.ceil(current)
