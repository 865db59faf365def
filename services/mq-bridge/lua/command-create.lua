-- Records a pending open command in smart-home-cache.
-- KEYS[1]  the command's key
-- KEYS[2]  the sorted set of pending commands' deadlines (swept by command-sweep.lua)
-- ARGV[1]  tenant id     ARGV[2] service     ARGV[3] reply deadline from now (ms)
-- ARGV[4]  retention of the key (ms, longer than the deadline: the result stays readable)
-- ARGV[5]  the partner expected to reply
-- ARGV[6]  the command's id (its member in KEYS[2])
-- Returns {createdAtMs, deadlineMs} on Redis's clock, shared by every replica.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'tenant', ARGV[1], 'service', ARGV[2], 'status', 'pending',
  'createdAt', now, 'deadline', deadline, 'partner', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], deadline, ARGV[6])
return {now, deadline}
