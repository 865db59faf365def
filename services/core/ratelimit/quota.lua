-- Admission against several quotas at once ("at most N units per period"), shared by every
-- replica: GCRA where a request may cost more than one unit and is refused, not queued, when over.
-- KEYS[i]        the i-th quota's key (same hash tag for all keys of one call)
-- ARGV[3i-2]     its emission interval in ms (period / limit)
-- ARGV[3i-1]     its period in ms: how far the theoretical arrival time may run ahead of now,
--                i.e. a full period's units may arrive at once
-- ARGV[3i]       units this request costs against it (0 = not counted)
-- Returns { admitted (1|0), retry_after_ms }. Either every quota admits and all are charged, or
-- none is charged and retry_after_ms says when the most-exceeded quota has room again. Time comes
-- from Redis, so every replica shares one clock.
-- now_ms   the Redis clock in ms, from the prelude that loadLua (core/redis.ts) puts in front
local next_tat = {}
local retry = 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 2])
  local period = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < now_ms then
    tat = now_ms
  end
  next_tat[i] = tat + cost * interval
  local over = next_tat[i] - now_ms - period
  if cost > 0 and over > retry then
    retry = over
  end
end
if retry > 0 then
  return { 0, math.ceil(retry) }
end

for i = 1, #KEYS do
  if tonumber(ARGV[3 * i]) > 0 then
    redis.call('SET', KEYS[i], string.format('%.3f', next_tat[i]), 'PX', math.max(1, math.ceil(next_tat[i] - now_ms)))
  end
end
return { 1, 0 }
