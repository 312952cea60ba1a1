-- Record a failed attempt under fencing: retry it later through the delayed set, dead-letter it
-- when its attempts are used up, fail it for good on a permanent error, or end it `cancelled`
-- when it was aborted on request.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4] delayed zset   KEYS[5] dead stream
-- KEYS[6] task hash
-- ARGV[1] consumer   ARGV[2] entry id   ARGV[3] task id   ARGV[4] error
-- ARGV[5] mode: "retry" | "fail" | "cancel"   ARGV[6] retry due ms   ARGV[7] now (RFC 3339)
-- ARGV[8] result TTL s   ARGV[9] events maxlen
-- Returns JSON {status = "retrying"|"dead"|"failed"|"cancelled"|"fenced"}
local stream, stats, events, delayed, dead, task = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local consumer, entry, id, err, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local due, now, ttl, maxlen = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]

local owned = redis.call('XPENDING', stream, 'workers', entry, entry, 1, consumer)
local r = redis.call('HMGET', task, 'state', 'entry', 'attempts', 'max_attempts', 'queue',
  'cancel_requested')
if #owned == 0 or r[1] ~= 'running' or r[2] ~= entry then
  redis.call('HINCRBY', stats, 'fenced', 1)
  return cjson.encode({status = 'fenced'})
end

redis.call('XACK', stream, 'workers', entry)
redis.call('XDEL', stream, entry)
redis.call('HDEL', task, 'entry')
redis.call('HINCRBY', stats, 'running', -1)

local function finish(state)
  redis.call('HSET', task, 'state', state, 'error', err, 'finished_at', now)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', state)
  redis.call('HINCRBY', stats, state, 1)
end

if mode == 'cancel' or (mode == 'retry' and r[6] == '1') then
  finish('cancelled')
  redis.call('EXPIRE', task, ttl)
  return cjson.encode({status = 'cancelled'})
elseif mode == 'fail' then
  finish('failed')
  redis.call('EXPIRE', task, ttl)
  return cjson.encode({status = 'failed'})
elseif tonumber(r[3]) >= tonumber(r[4]) then
  -- Dead letters keep their record (no TTL) until they are replayed.
  local dead_entry = redis.call('XADD', dead, '*', 'id', id, 'queue', r[5], 'error', err,
    'attempts', r[3], 'at', now)
  redis.call('HSET', task, 'dead_entry', dead_entry)
  finish('dead')
  return cjson.encode({status = 'dead'})
else
  redis.call('HSET', task, 'state', 'retrying', 'error', err, 'run_at_ms', due)
  redis.call('ZADD', delayed, due, id)
  redis.call('HINCRBY', stats, 'retrying', 1)
  redis.call('HINCRBY', stats, 'retries', 1)
  return cjson.encode({status = 'retrying'})
end
