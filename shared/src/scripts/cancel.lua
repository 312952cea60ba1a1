-- Cancel a task: a waiting one (stream or delayed set) ends `cancelled` at once; a running one
-- is flagged and its worker is told over pub/sub, and ends `cancelled` when the worker aborts.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4] delayed zset   KEYS[5] task hash
-- ARGV[1] task id   ARGV[2] now (RFC 3339)   ARGV[3] result TTL s   ARGV[4] events maxlen
-- ARGV[5] cancel channel
-- Returns JSON {status = "cancelled"|"cancelling"|"terminal"|"missing", state}
local stream, stats, events, delayed, task = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, ttl, maxlen, channel = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local r = redis.call('HMGET', task, 'state', 'entry')
local state = r[1]
if not state then
  return cjson.encode({status = 'missing', state = ''})
end
if state == 'queued' or state == 'retrying' then
  redis.call('ZREM', delayed, id)
  if r[2] then
    -- Ack too: the entry may already sit, unstarted, in some consumer's pending list.
    redis.call('XACK', stream, 'workers', r[2])
    redis.call('XDEL', stream, r[2])
  end
  redis.call('HSET', task, 'state', 'cancelled', 'finished_at', now)
  redis.call('HDEL', task, 'entry', 'run_at_ms')
  redis.call('EXPIRE', task, ttl)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', 'cancelled')
  redis.call('HINCRBY', stats, state, -1)
  redis.call('HINCRBY', stats, 'cancelled', 1)
  return cjson.encode({status = 'cancelled', state = 'cancelled'})
elseif state == 'running' then
  redis.call('HSET', task, 'cancel_requested', '1')
  redis.call('PUBLISH', channel, id)
  return cjson.encode({status = 'cancelling', state = 'running'})
end
return cjson.encode({status = 'terminal', state = state})
