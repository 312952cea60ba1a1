-- Cancel a task: a waiting one (stream or delayed set) ends `cancelled` at once; a running one
-- (its entry pending in the group) is flagged and its worker is told over pub/sub, and ends
-- `cancelled` when the worker aborts. A task born in its stream has no hash until then: its
-- entry (named by its id) holds the record, which a cancelled task's hash gets whole.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4] delayed zset   KEYS[5] task hash
-- ARGV[1] task id   ARGV[2] now (RFC 3339)   ARGV[3] result TTL s   ARGV[4] events maxlen
-- ARGV[5] cancel channel   ARGV[6] the entry the id names ('' for a {queue}-{ULID} id)
-- ARGV[7] queue
-- Returns JSON {status = "cancelled"|"cancelling"|"terminal"|"missing", state}
local stream, stats, events, delayed, task = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, ttl, maxlen, channel = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local r = redis.call('HMGET', task, 'state', 'entry')
local state, entry, fields = r[1], r[2], nil
if not state then
  -- Born in its stream and not yet written: queued or running while its entry exists.
  entry = ARGV[6]
  local e = entry ~= '' and redis.call('XRANGE', stream, entry, entry)[1]
  if not e then
    return cjson.encode({status = 'missing', state = ''})
  end
  fields, state = e[2], 'queued'
end
if state == 'queued' and entry then
  -- pcall: before any worker created the group, nothing is pending (XPENDING answers NOGROUP).
  local p = redis.pcall('XPENDING', stream, 'workers', entry, entry, 1)
  if not p.err and #p > 0 then state = 'running' end
end
if state == 'queued' or state == 'retrying' then
  redis.call('ZREM', delayed, id)
  if entry then redis.call('XDEL', stream, entry) end
  if fields then
    redis.call('HSET', task, 'id', id, 'queue', ARGV[7], 'attempts', 0, unpack(fields))
  end
  redis.call('HSET', task, 'state', 'cancelled', 'finished_at', now)
  redis.call('HDEL', task, 'entry', 'run_at_ms')
  redis.call('EXPIRE', task, ttl)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', 'cancelled')
  if state == 'retrying' then redis.call('HINCRBY', stats, 'retrying', -1) end
  redis.call('HINCRBY', stats, 'cancelled', 1)
  return cjson.encode({status = 'cancelled', state = 'cancelled'})
elseif state == 'running' then
  redis.call('HSET', task, 'cancel_requested', '1')
  redis.call('PUBLISH', channel, id)
  return cjson.encode({status = 'cancelling', state = 'running'})
end
return cjson.encode({status = 'terminal', state = state})
