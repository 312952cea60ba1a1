-- Hand a running task back to its queue at once (graceful shutdown): under fencing, its entry is
-- acked and deleted and a fresh one appended, and the interrupted attempt is not counted.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] task hash
-- ARGV[1] consumer   ARGV[2] entry id   ARGV[3] task id
-- Returns JSON {status = "queued"|"fenced"|"skipped", entry}
local stream, stats, task = KEYS[1], KEYS[2], KEYS[3]
local consumer, entry, id = ARGV[1], ARGV[2], ARGV[3]
local owned = redis.call('XPENDING', stream, 'workers', entry, entry, 1, consumer)
if #owned == 0 then
  return cjson.encode({status = 'fenced', entry = ''})
end
local r = redis.call('HMGET', task, 'state', 'entry', 'attempts')
redis.call('XACK', stream, 'workers', entry)
redis.call('XDEL', stream, entry)
if r[1] ~= 'running' and r[1] ~= 'queued' or (r[2] and r[2] ~= entry) then
  -- Nothing to hand back: the entry was stale (task finished or superseded).
  return cjson.encode({status = 'skipped', entry = ''})
end
local fresh = redis.call('XADD', stream, '*', 'id', id)
if r[1] == 'running' then
  local attempts = math.max(tonumber(r[3]) - 1, 0)
  redis.call('HSET', task, 'state', 'queued', 'attempts', attempts, 'entry', fresh)
  redis.call('HINCRBY', stats, 'running', -1)
  redis.call('HINCRBY', stats, 'queued', 1)
else
  redis.call('HSET', task, 'entry', fresh)
end
redis.call('HINCRBY', stats, 'handed_back', 1)
return cjson.encode({status = 'queued', entry = fresh})
