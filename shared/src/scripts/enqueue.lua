-- Enqueue a batch of new tasks of one queue: write each record and either append it to the
-- stream or park it in the delayed set, honouring idempotency keys and the queue depth limit.
-- One call per batch: the stats counters move once for the whole batch.
-- KEYS[1] stream   KEYS[2] stats hash   KEYS[3] delayed zset
-- KEYS[4..] per task: task hash, idempotency key (a placeholder when it has none)
-- ARGV[1] max stream length (0 = unlimited)
-- ARGV[2..] per task: id, due ms (0 = run now), idempotency TTL s (0 = no key), field count n,
--   then n field, value pairs of the record
-- Returns JSON list, in order, of {status = "queued"|"delayed"|"duplicate"|"full", id}
local stream, stats, delayed = KEYS[1], KEYS[2], KEYS[3]
local max_depth = tonumber(ARGV[1])
local depth = 0
if max_depth > 0 then depth = redis.call('XLEN', stream) end
local out = {}
local added = 0
local a = 2
for k = 4, #KEYS, 2 do
  local task, idem = KEYS[k], KEYS[k + 1]
  local id, due, idem_ttl, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]),
    tonumber(ARGV[a + 3])
  local first = a + 4
  a = first + 2 * n
  local existing = idem_ttl > 0 and redis.call('GET', idem)
  if existing then
    out[#out + 1] = {status = 'duplicate', id = existing}
  elseif max_depth > 0 and depth >= max_depth then
    out[#out + 1] = {status = 'full', id = ''}
  else
    if due > 0 then
      redis.call('ZADD', delayed, due, id)
      redis.call('HSET', task, 'run_at_ms', ARGV[first - 3], unpack(ARGV, first, a - 1))
      out[#out + 1] = {status = 'delayed', id = id}
    else
      -- The record does not name its entry: a worker's start writes it (plain enqueues, a
      -- MULTI block, cannot know it either).
      redis.call('XADD', stream, '*', 'id', id)
      depth = depth + 1
      redis.call('HSET', task, unpack(ARGV, first, a - 1))
      out[#out + 1] = {status = 'queued', id = id}
    end
    if idem_ttl > 0 then
      redis.call('SET', idem, id, 'EX', idem_ttl)
    end
    added = added + 1
  end
end
if added > 0 then
  redis.call('HINCRBY', stats, 'enqueued', added)
  redis.call('HINCRBY', stats, 'queued', added)
end
if #out == 0 then return '[]' end
return cjson.encode(out)
