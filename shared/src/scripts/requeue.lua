-- Hand a running task back to its queue at once (graceful shutdown): under fencing, its entry is
-- acked and deleted, and a reference entry (`id` alone) appended; the hash gets state `queued`,
-- the new entry's id, and the attempts before the interrupted one, which is not counted. A task
-- born in its stream has no hash yet: its entry's record is copied into it first.
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
local fields
if not r[1] then
  local e = redis.call('XRANGE', stream, entry, entry)[1]
  fields = e and e[2]
  if fields then
    for k = 1, #fields, 2 do
      if fields[k] == 'id' then fields = nil break end
    end
  end
end
redis.call('XACK', stream, 'workers', entry)
redis.call('XDEL', stream, entry)
if (r[1] and r[1] ~= 'queued') or (r[2] and r[2] ~= entry) or (not r[1] and not fields) then
  -- Nothing to hand back: the entry was stale (task finished or superseded).
  return cjson.encode({status = 'skipped', entry = ''})
end
local fresh = redis.call('XADD', stream, '*', 'id', id)
local attempts = (tonumber(r[3]) or 0) + owned[1][4] - 1
if fields then
  -- The id minus the entry, minus its lane (after a '.').
  local queue = string.match(string.sub(id, 1, #id - #entry - 1), '^[^.]+')
  redis.call('HSET', task, 'id', id, 'queue', queue, unpack(fields))
end
redis.call('HSET', task, 'state', 'queued', 'attempts', attempts, 'entry', fresh)
redis.call('HINCRBY', stats, 'handed_back', 1)
return cjson.encode({status = 'queued', entry = fresh})
