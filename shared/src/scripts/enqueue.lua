-- Enqueue a batch of new tasks of one queue that need a decision (idempotency keys, the queue
-- depth limit, a due time): each is appended to the stream as an entry carrying its whole
-- record, or parked in the delayed set with its record in a hash. Plain tasks skip this script
-- (one XADD each, pipelined). One call per batch: the counter moves once for the whole batch.
-- KEYS[1] stream   KEYS[2] stats hash   KEYS[3] delayed zset
-- KEYS[4..] per task: task hash (of a delayed task; a placeholder otherwise), idempotency key
--   (a placeholder when it has none)
-- ARGV[1] max stream length (0 = unlimited)   ARGV[2] the source: queue, or queue.lane (lane.rs)
-- ARGV[3..] per task: id (of a delayed task; '' otherwise), due ms (0 = run now), idempotency
--   TTL s (0 = no key), field count n, then n field, value pairs: the entry's fields for a task
--   run now, the hash's for a delayed one
-- Returns JSON list, in order, of {status = "queued"|"delayed"|"duplicate"|"full", id}. A task
-- run now gets the id {source}-{entry id}.
local stream, stats, delayed = KEYS[1], KEYS[2], KEYS[3]
local max_depth, queue = tonumber(ARGV[1]), ARGV[2]
local depth = 0
if max_depth > 0 then depth = redis.call('XLEN', stream) end
local out = {}
local added = 0
local a = 3
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
      id = queue .. '-' .. redis.call('XADD', stream, '*', unpack(ARGV, first, a - 1))
      depth = depth + 1
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
end
if #out == 0 then return '[]' end
return cjson.encode(out)
