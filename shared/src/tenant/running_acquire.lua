-- Take one of a tenant's `max_running` slots for a task, or report that they are all held. A
-- slot is the task's id in the tenant's running set, scored by when it lapses (ms on Redis'
-- clock) unless its worker refreshes it (`running_refresh.lua`): slots of a killed worker free
-- themselves one lease later, when its tasks are reclaimed anyway. A task that already holds a
-- slot (reclaimed from a lost worker, run again) keeps it.
-- KEYS[1] the tenant's running set
-- ARGV[1] max_running   ARGV[2] task id   ARGV[3] lease ms
-- Returns {1, slots held now} when the slot is the task's, {0, slots held} when all are held.
local running, limit, id, lease = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
local held = redis.call('ZCARD', running)
local mine = redis.call('ZSCORE', running, id)
if not mine and held >= limit then
  return {0, held}
end
redis.call('ZADD', running, now + lease, id)
-- Every score is at most now + lease: the set outlives its last slot by nothing.
redis.call('PEXPIRE', running, lease)
if not mine then held = held + 1 end
return {1, held}
