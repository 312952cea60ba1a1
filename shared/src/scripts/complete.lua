-- Commit the results of a batch of succeeded tasks of one queue. A result is written only if
-- the entry is still pending under the completing consumer (fencing): a late completion from a
-- worker that lost its entry is dropped and counted, never written over a newer attempt.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4..] task hashes
-- ARGV[1] consumer   ARGV[2] now (RFC 3339)   ARGV[3] result TTL s   ARGV[4] events maxlen
-- ARGV[5..] entry id, task id, result JSON triples, in the order of KEYS[4..]
-- Returns JSON list of {id, status = "succeeded"|"fenced"}
local stream, stats, events = KEYS[1], KEYS[2], KEYS[3]
local consumer, now, ttl, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
for i = 4, #KEYS do
  local task = KEYS[i]
  local base = 5 + (i - 4) * 3
  local entry, id, result = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local owned = redis.call('XPENDING', stream, 'workers', entry, entry, 1, consumer)
  local r = redis.call('HMGET', task, 'state', 'entry')
  if #owned == 0 or r[1] ~= 'running' or r[2] ~= entry then
    redis.call('HINCRBY', stats, 'fenced', 1)
    out[#out + 1] = {id = id, status = 'fenced'}
  else
    redis.call('HSET', task, 'state', 'succeeded', 'result', result, 'finished_at', now)
    redis.call('HDEL', task, 'entry')
    redis.call('XACK', stream, 'workers', entry)
    redis.call('XDEL', stream, entry)
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', 'succeeded')
    redis.call('EXPIRE', task, ttl)
    redis.call('HINCRBY', stats, 'running', -1)
    redis.call('HINCRBY', stats, 'succeeded', 1)
    out[#out + 1] = {id = id, status = 'succeeded'}
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
