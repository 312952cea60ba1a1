-- Commit the results of a batch of succeeded tasks of one queue. A result is written only if
-- the entry is still pending under the completing consumer (fencing): a late completion from a
-- worker that lost its entry is dropped and counted, never written over a newer attempt.
-- Ownership is read with one XPENDING over the batch's id range; acks, deletes and the events
-- entry (`ids`, comma-separated: one XADD per batch, not per task) go in one call each, and the
-- stats move once per batch. Each finished record is written in ONE HSET: for a task born in
-- its stream (no hash yet) the worker passes the whole record it ran.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4..] task hashes
-- ARGV[1] consumer   ARGV[2] now (RFC 3339)   ARGV[3] result TTL s   ARGV[4] events maxlen
-- ARGV[5] lowest, ARGV[6] highest entry id of the batch
-- ARGV[7..] per task, in the order of KEYS[4..]: entry id, task id, result JSON, attempts,
--   started_at, field count n, then n field, value pairs of the record (n = 0: the hash has it)
-- Returns the list of the 1-based positions of the fenced tasks; every other one succeeded
local stream, stats, events = KEYS[1], KEYS[2], KEYS[3]
-- ttl stays a string: a Lua number passed to redis.call is formatted with snprintf, per task.
local consumer, now, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if #KEYS < 4 then return {} end

local owned = {}
for _, p in ipairs(redis.call('XPENDING', stream, 'workers', ARGV[5], ARGV[6], 100000,
    consumer)) do
  owned[p[1]] = true
end

local fenced, done, ids = {}, {}, {}
local a = 7
for i = 4, #KEYS do
  local task = KEYS[i]
  local entry, id, result, attempts, started = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    ARGV[a + 4]
  local n = tonumber(ARGV[a + 5])
  local first = a + 6
  a = first + 2 * n
  -- Pending under this consumer means running here with this entry: nothing moves a running
  -- task's entry without acking it (requeue, fail, complete) or reassigns it without XCLAIM.
  -- So the pending check alone fences, with no read of the record. For a task whose record is
  -- its hash, EXPIRE doubles as the existence check: a record deleted by hand is not recreated.
  if not owned[entry] or (n == 0 and redis.call('EXPIRE', task, ttl) == 0) then
    fenced[#fenced + 1] = i - 3
  else
    -- An entry completes once even if it is listed twice.
    owned[entry] = nil
    redis.call('HSET', task, 'state', 'succeeded', 'result', result, 'finished_at', now,
      'attempts', attempts, 'started_at', started, 'worker', consumer, unpack(ARGV, first, a - 1))
    if n > 0 then redis.call('EXPIRE', task, ttl) end
    done[#done + 1] = entry
    ids[#ids + 1] = id
  end
end
if #done > 0 then
  redis.call('XACK', stream, 'workers', unpack(done))
  redis.call('XDEL', stream, unpack(done))
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'ids', table.concat(ids, ','),
    'state', 'succeeded')
  redis.call('HINCRBY', stats, 'succeeded', #done)
end
if #fenced > 0 then redis.call('HINCRBY', stats, 'fenced', #fenced) end
return fenced
