-- Enqueue one task: write its record and either append it to the stream or park it in the
-- delayed set, honouring the idempotency key and the queue depth limit.
-- KEYS[1] stream   KEYS[2] task hash   KEYS[3] stats hash   KEYS[4] delayed zset
-- KEYS[5] idempotency key (ignored when ARGV[4] is 0)
-- ARGV[1] task id   ARGV[2] due ms (0 = run now)   ARGV[3] max stream length (0 = unlimited)
-- ARGV[4] idempotency TTL s (0 = no key)   ARGV[5..] field, value pairs of the record
-- Returns JSON {status = "queued"|"delayed"|"duplicate"|"full", id, entry}
local id = ARGV[1]
local due = tonumber(ARGV[2])
local max_depth = tonumber(ARGV[3])
local idem_ttl = tonumber(ARGV[4])

if idem_ttl > 0 then
  local existing = redis.call('GET', KEYS[5])
  if existing then
    return cjson.encode({status = 'duplicate', id = existing, entry = ''})
  end
end
if max_depth > 0 and redis.call('XLEN', KEYS[1]) >= max_depth then
  return cjson.encode({status = 'full', id = '', entry = ''})
end

local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
if idem_ttl > 0 then
  redis.call('SET', KEYS[5], id, 'EX', idem_ttl)
end
redis.call('HINCRBY', KEYS[3], 'enqueued', 1)
redis.call('HINCRBY', KEYS[3], 'queued', 1)

if due > 0 then
  redis.call('ZADD', KEYS[4], due, id)
  redis.call('HSET', KEYS[2], 'run_at_ms', ARGV[2])
  return cjson.encode({status = 'delayed', id = id, entry = ''})
end
local entry = redis.call('XADD', KEYS[1], '*', 'id', id)
redis.call('HSET', KEYS[2], 'entry', entry)
return cjson.encode({status = 'queued', id = id, entry = entry})
