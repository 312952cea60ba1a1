-- Move due tasks from the delayed set back into their stream as `queued`, each under a
-- reference entry (`id` alone: the hash holds the record and names the entry). The caller reads the
-- due ids first; each is re-checked here, so concurrent promoters never move one twice.
-- KEYS[1] delayed zset   KEYS[2] stream   KEYS[3] stats   KEYS[4..] task hashes
-- ARGV[1] now ms   ARGV[2..] task ids, in the order of KEYS[4..]
-- Returns the number of tasks moved into the stream
local delayed, stream, stats = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local moved = 0
for i = 4, #KEYS do
  local task = KEYS[i]
  local id = ARGV[i - 2]
  local score = redis.call('ZSCORE', delayed, id)
  if score and tonumber(score) <= now then
    redis.call('ZREM', delayed, id)
    local state = redis.call('HGET', task, 'state')
    if state == 'retrying' or state == 'queued' then
      local entry = redis.call('XADD', stream, '*', 'id', id)
      redis.call('HSET', task, 'state', 'queued', 'entry', entry)
      redis.call('HDEL', task, 'run_at_ms')
      if state == 'retrying' then
        redis.call('HINCRBY', stats, 'retrying', -1)
      end
      moved = moved + 1
    end
  end
end
return moved
