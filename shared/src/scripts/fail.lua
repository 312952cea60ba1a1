-- Record a failed attempt under fencing: retry it later through the delayed set, dead-letter it
-- when its attempts are used up, fail it for good on a permanent error, or end it `cancelled`
-- when it was aborted on request. The record is written in one HSET with the attempt's
-- outcome: for a task born in its stream (no hash yet) the worker passes the whole record.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4] delayed zset   KEYS[5] dead stream
-- KEYS[6] task hash
-- ARGV[1] consumer   ARGV[2] entry id   ARGV[3] task id   ARGV[4] error
-- ARGV[5] mode: "retry" | "fail" | "cancel"   ARGV[6] retry due ms   ARGV[7] now (RFC 3339)
-- ARGV[8] result TTL s   ARGV[9] events maxlen   ARGV[10] attempts   ARGV[11] max_attempts
-- ARGV[12] started_at   ARGV[13] queue   ARGV[14] field count n, then n field, value pairs of
--   the record (n = 0: the hash has it)
-- Returns JSON {status = "retrying"|"dead"|"failed"|"cancelled"|"fenced"}
local stream, stats, events, delayed, dead, task = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local consumer, entry, id, err, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local due, now, ttl, maxlen = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local attempts, max_attempts, started, queue = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
local n = tonumber(ARGV[14])

-- Pending under this consumer means running here with this entry (see complete.lua).
local owned = redis.call('XPENDING', stream, 'workers', entry, entry, 1, consumer)
if #owned == 0 or (n == 0 and redis.call('EXISTS', task) == 0) then
  redis.call('HINCRBY', stats, 'fenced', 1)
  return cjson.encode({status = 'fenced'})
end
local cancel_requested = redis.call('HGET', task, 'cancel_requested')

redis.call('XACK', stream, 'workers', entry)
redis.call('XDEL', stream, entry)
redis.call('HDEL', task, 'entry')

-- One HSET: the outcome, the transition's own fields, and the record when no hash has it yet.
local function write(state, ...)
  local args = {task, 'state', state, 'error', err, 'attempts', attempts, 'started_at', started,
    'worker', consumer, ...}
  for i = 15, 14 + 2 * n do args[#args + 1] = ARGV[i] end
  redis.call('HSET', unpack(args))
end
local function finish(state, ...)
  write(state, 'finished_at', now, ...)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', state)
  redis.call('HINCRBY', stats, state, 1)
end

if mode == 'cancel' or (mode == 'retry' and cancel_requested == '1') then
  finish('cancelled')
  redis.call('EXPIRE', task, ttl)
  return cjson.encode({status = 'cancelled'})
elseif mode == 'fail' then
  finish('failed')
  redis.call('EXPIRE', task, ttl)
  return cjson.encode({status = 'failed'})
elseif tonumber(attempts) >= tonumber(max_attempts) then
  -- Dead letters keep their record (no TTL) until they are replayed.
  local dead_entry = redis.call('XADD', dead, '*', 'id', id, 'queue', queue, 'error', err,
    'attempts', attempts, 'at', now)
  finish('dead', 'dead_entry', dead_entry)
  return cjson.encode({status = 'dead'})
else
  write('retrying', 'run_at_ms', due)
  redis.call('ZADD', delayed, due, id)
  redis.call('HINCRBY', stats, 'retrying', 1)
  redis.call('HINCRBY', stats, 'retries', 1)
  return cjson.encode({status = 'retrying'})
end
