-- Ends a request of a rolling-window quota (see window.lua): its window starts now, the moment its
-- answer (or failure) was seen, unless its pessimistic end came first. ARGV[2] = 1 gives a slot
-- back unused (nothing was sent), so it frees at once.
-- KEYS[1]  the quota's sorted set
-- ARGV[1]  the grant id
-- ARGV[2]  1 when nothing was sent, else 0
-- now_ms   the Redis clock in ms, from the prelude that loadLua (core/redis.ts) puts in front
if ARGV[2] == '1' then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZADD', KEYS[1], 'XX', 'LT', string.format('%.3f', now_ms), ARGV[1])
