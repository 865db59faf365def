-- Takes a slot of a partner's rolling-window quota shared by every replica, counting each request
-- until its answer: the window of a request starts when its answer came back (or, while it is in
-- flight, when it would end at the latest), so a request is never sent until `perWindow` earlier
-- ones have all been answered more than a window ago. That holds at the partner's side whatever
-- delays the network or the partner's own clock add: the partner stamped them before answering.
-- KEYS[1]  the quota's sorted set: member = grant id, score = end of the request (ms, Redis clock)
-- KEYS[2]  the pause key (a 429's Retry-After: no grant before its value)
-- KEYS[3]  the epoch key: present since this Redis last started empty
-- ARGV[1]  requests allowed per window
-- ARGV[2]  the window in ms (the partner's, plus any safety)
-- ARGV[3]  the longest a request may take from grant to answer, in ms (its pessimistic end)
-- ARGV[4]  the grant id
-- Returns { granted (1|0), wait_ms, why } where why is 'slot', 'pause', 'inflight' or 'epoch'.
-- now_ms   the Redis clock in ms, from the prelude that loadLua (core/redis.ts) puts in front
local per_window = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])

-- An empty Redis (first start or restarted without its data) knows nothing of the requests granted
-- before: none is granted until any of them would have ended and left the window.
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[3], string.format('%.3f', now_ms))
  local resume = now_ms + hold + window
  redis.call('SET', KEYS[2], string.format('%.3f', resume), 'PX', math.ceil(hold + window))
  return { 0, math.ceil(hold + window), 'epoch' }
end

local paused = tonumber(redis.call('GET', KEYS[2]))
if paused ~= nil and paused > now_ms then
  return { 0, math.ceil(paused - now_ms), 'pause' }
end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.3f', now_ms - window))
if redis.call('ZCARD', KEYS[1]) < per_window then
  redis.call('ZADD', KEYS[1], string.format('%.3f', now_ms + hold), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(hold + window))
  return { 1, 0, 'slot' }
end

-- Full. The earliest end frees first; an answered request leaves the window exactly `window`
-- after its answer, and one still in flight no sooner than `window` from now.
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local ends = tonumber(first[2])
if ends <= now_ms then
  return { 0, math.ceil(ends + window - now_ms), 'slot' }
end
return { 0, math.ceil(window), 'inflight' }
