-- Delete a dead-lettered task for good: its dead-letter entry, its record and its output.
-- KEYS[1] dead stream   KEYS[2] task hash   KEYS[3] output stream
-- Returns JSON {status = "deleted"|"not_dead"|"missing", state}
local dead, task, out = KEYS[1], KEYS[2], KEYS[3]
local r = redis.call('HMGET', task, 'state', 'dead_entry')
if not r[1] then
  return cjson.encode({status = 'missing', state = ''})
end
if r[1] ~= 'dead' then
  return cjson.encode({status = 'not_dead', state = r[1]})
end
if r[2] then redis.call('XDEL', dead, r[2]) end
redis.call('DEL', task, out)
return cjson.encode({status = 'deleted', state = 'dead'})
