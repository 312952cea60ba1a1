-- Move due tasks from the delayed set back into their stream as `queued`, each under a
-- reference entry (`id` alone: the hash holds the record and names the entry). The caller reads the
-- due ids first; each is re-checked here, so concurrent promoters never move one twice. Each task
-- goes to the stream of the lane its id names; a lane not yet in the lanes set is added, and the
-- workers are told to re-read it.
-- KEYS[1] delayed zset   KEYS[2] stats   KEYS[3] lanes set
-- KEYS[4..] per task: task hash, stream of its lane
-- ARGV[1] now ms   ARGV[2] channel   ARGV[3] queue
-- ARGV[4..] per task, in the order of KEYS[4..]: task id, lane ('' for the queue's own stream)
-- Returns the number of tasks moved into the stream
local delayed, stats, lanes = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local moved, added = 0, 0
for i = 4, #KEYS, 2 do
  local task, stream = KEYS[i], KEYS[i + 1]
  local id, lane = ARGV[i], ARGV[i + 1]
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
      if lane ~= '' then added = added + redis.call('SADD', lanes, lane) end
      moved = moved + 1
    end
  end
end
if added > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return moved
