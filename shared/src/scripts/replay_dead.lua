-- Replay a dead-lettered task: remove its dead-letter entry and queue it again with a fresh
-- attempt budget, under a reference entry (`id` alone; the hash holds the record).
-- KEYS[1] stream (of the task's lane)   KEYS[2] stats   KEYS[3] dead stream   KEYS[4] task hash
-- KEYS[5] lanes set
-- ARGV[1] task id   ARGV[2] its lane ('' for the queue's own stream)   ARGV[3] the channel
--   that tells workers to re-read the lanes   ARGV[4] queue
-- Returns JSON {status = "queued"|"not_dead"|"missing", state, entry}
local stream, stats, dead, task = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
local r = redis.call('HMGET', task, 'state', 'dead_entry')
if not r[1] then
  return cjson.encode({status = 'missing', state = '', entry = ''})
end
if r[1] ~= 'dead' then
  return cjson.encode({status = 'not_dead', state = r[1], entry = ''})
end
if r[2] then redis.call('XDEL', dead, r[2]) end
local entry = redis.call('XADD', stream, '*', 'id', id)
if ARGV[2] ~= '' and redis.call('SADD', KEYS[5], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
redis.call('HSET', task, 'state', 'queued', 'attempts', 0, 'entry', entry)
redis.call('HDEL', task, 'dead_entry', 'finished_at')
redis.call('PERSIST', task)
redis.call('HINCRBY', stats, 'replayed', 1)
return cjson.encode({status = 'queued', state = 'queued', entry = entry})
