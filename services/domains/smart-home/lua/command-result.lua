-- Mirrors an open command's outcome, decided in PostgreSQL (command-store.ts), into smart-home-cache
-- and publishes the tenant's `command.result` event in the same round trip. A hash that already holds
-- this outcome publishes nothing, so pushing again after a crash or a lost lease is harmless; a hash
-- Redis has lost is written afresh and the event published again.
-- KEYS[1]  the command's key
-- ARGV[1]  the outcome: 'opened' | 'failed' | 'timeout'
-- ARGV[2]  the partner's reason ('' for none): kept in the hash for operators, never published
-- ARGV[3]  tenant id      ARGV[4]  service      ARGV[5]  the partner asked
-- ARGV[6]  createdAt (ms) ARGV[7]  deadline (ms) ARGV[8]  completedAt (ms)
-- ARGV[9]  when the hash expires (unix ms: the end of the result's retention)
-- ARGV[10] the prefix of tenant event channels (the channel is ARGV[10] .. tenant)
-- ARGV[11] the tenant's `command.result` event as JSON, built in TypeScript (buildCommandResult in
--          services/contracts/tenant-events.ts) and published as given
-- Returns 1 when the event was published, 0 when the hash already held the outcome.
if redis.call('HGET', KEYS[1], 'status') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'tenant', ARGV[3], 'service', ARGV[4], 'partner', ARGV[5], 'status', ARGV[1],
  'reason', ARGV[2], 'createdAt', ARGV[6], 'deadline', ARGV[7], 'completedAt', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], ARGV[9])
redis.call('PUBLISH', ARGV[10] .. ARGV[3], ARGV[11])
return 1
