-- Delivers an order status event to the tenant's channel unless it is a repeat or older than what
-- was delivered for the order already; the check, the record and the PUBLISH are one step, so
-- consumers on several api replicas cannot both deliver, nor deliver out of order.
-- KEYS[1]  the order's last delivered version
-- KEYS[2]  the event id's marker (used only for unversioned events)
-- ARGV[1]  the event's version (0: an unversioned event from an older publisher, checked by id)
-- ARGV[2]  how long both keys are kept, in seconds
-- ARGV[3]  the tenant's event channel
-- ARGV[4]  the tenant's `order.status` event as JSON, built in TypeScript (buildOrderStatus in
--          services/contracts/tenant-events.ts) and published as given
-- Returns 'delivered', 'duplicate' (this version or event id was delivered already) or 'stale'
-- (a newer version of the order was delivered already).
local version = tonumber(ARGV[1])
if version == 0 then
  if not redis.call('SET', KEYS[2], '1', 'EX', ARGV[2], 'NX') then return 'duplicate' end
else
  local last = tonumber(redis.call('GET', KEYS[1]) or '0')
  if version == last then return 'duplicate' end
  if version < last then return 'stale' end
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 'delivered'
