-- Refresh the slots a worker holds in a tenant's running set: each lapses one lease from now.
-- A slot that already lapsed (its worker stalled longer than a lease) is not taken again: another
-- task may hold it now; its task runs on and the quota is exceeded by one until it ends.
-- KEYS[1] the tenant's running set
-- ARGV[1] lease ms   ARGV[2..] task ids
-- Returns how many of the ids still held their slot.
local running, lease = KEYS[1], tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local kept = 0
for i = 2, #ARGV do
  if redis.call('ZADD', running, 'XX', 'CH', now + lease, ARGV[i]) == 1 then
    kept = kept + 1
  end
end
if kept > 0 then
  redis.call('PEXPIRE', running, lease)
end
return kept
