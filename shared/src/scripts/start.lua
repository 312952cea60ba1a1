-- Start a batch of delivered entries of one queue: each task still runnable becomes `running`
-- under the consumer that holds its entry; the rest are acked and dropped (a task whose
-- cancellation was requested ends `cancelled`), and a task whose attempts are used up (its
-- workers kept dying) is dead-lettered. Ownership is read with one XPENDING over the batch's id
-- range, acks and deletes go in one call each, and the stats move once per batch.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4] dead stream   KEYS[5..] task hashes
-- ARGV[1] consumer   ARGV[2] now (RFC 3339)   ARGV[3] result TTL s   ARGV[4] events maxlen
-- ARGV[5] lowest, ARGV[6] highest entry id of the batch
-- ARGV[7..] entry id, task id pairs, in the order of KEYS[5..]
-- Returns JSON list of {status = "run"|"skip"|"dead", entry, id, reason?, kind?, payload?,
--   attempts?, max_attempts?, timeout_ms?}
local stream, stats, events, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local consumer, now, ttl, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out, drops, delta = {}, {}, {}
if #KEYS < 5 then return '[]' end

local function add(field, n) delta[field] = (delta[field] or 0) + n end
local function drop(entry) drops[#drops + 1] = entry end

local lo, hi = ARGV[5], ARGV[6]
local owned = {}
for _, p in ipairs(redis.call('XPENDING', stream, 'workers', lo, hi, 100000, consumer)) do
  owned[p[1]] = true
end

for i = 5, #KEYS do
  local task = KEYS[i]
  local entry = ARGV[7 + (i - 5) * 2]
  local id = ARGV[8 + (i - 5) * 2]
  if not owned[entry] then
    -- Another consumer claimed the entry since it was delivered here: it is theirs to run.
    out[#out + 1] = {status = 'skip', entry = entry, id = id, reason = 'entry held by another consumer'}
  else
    local r = redis.call('HMGET', task, 'state', 'attempts', 'max_attempts', 'kind', 'payload',
      'timeout_ms', 'entry', 'queue', 'cancel_requested', 'worker')
    local state = r[1]
    if state == 'running' and r[10] == consumer and r[7] == entry then
      -- Started here already: a start re-sent after a lost reply, or the entry delivered twice
      -- to this consumer. Not a new attempt; the worker runs it unless it is running it now.
      out[#out + 1] = {status = 'run', entry = entry, id = id, kind = r[4], payload = r[5],
        attempts = tonumber(r[2]), max_attempts = tonumber(r[3]), timeout_ms = tonumber(r[6]),
        resumed = true}
    elseif not state then
      drop(entry)
      out[#out + 1] = {status = 'skip', entry = entry, id = id, reason = 'no task record'}
    elseif state ~= 'queued' and state ~= 'running' then
      drop(entry)
      out[#out + 1] = {status = 'skip', entry = entry, id = id, reason = 'task is ' .. state}
    elseif r[7] and r[7] ~= entry then
      -- A stale entry: the task was re-queued under a newer one.
      drop(entry)
      out[#out + 1] = {status = 'skip', entry = entry, id = id, reason = 'superseded entry'}
    elseif r[9] == '1' then
      -- Cancelled while its previous holder ran it; that holder died before acting on it.
      drop(entry)
      redis.call('HSET', task, 'state', 'cancelled', 'finished_at', now)
      redis.call('HDEL', task, 'entry')
      redis.call('EXPIRE', task, ttl)
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', 'cancelled')
      add(state, -1)
      add('cancelled', 1)
      out[#out + 1] = {status = 'skip', entry = entry, id = id, reason = 'cancel requested'}
    else
      local attempts = tonumber(r[2]) + 1
      local max_attempts = tonumber(r[3])
      if state == 'queued' then
        add('queued', -1)
        add('running', 1)
      else
        -- Re-delivery of a task whose previous holder was lost.
        add('reclaimed', 1)
      end
      if attempts > max_attempts then
        local err = 'attempt ' .. attempts .. ' exceeds max_attempts (' .. max_attempts ..
          '): every earlier attempt was lost with its worker'
        local dead_entry = redis.call('XADD', dead, '*', 'id', id, 'queue', r[8],
          'error', err, 'attempts', attempts - 1, 'at', now)
        redis.call('HSET', task, 'state', 'dead', 'error', err, 'finished_at', now,
          'dead_entry', dead_entry)
        redis.call('HDEL', task, 'entry')
        drop(entry)
        redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', 'dead')
        add('running', -1)
        add('dead', 1)
        out[#out + 1] = {status = 'dead', entry = entry, id = id, reason = err}
      else
        redis.call('HSET', task, 'state', 'running', 'attempts', attempts, 'started_at', now,
          'worker', consumer, 'entry', entry)
        out[#out + 1] = {status = 'run', entry = entry, id = id, kind = r[4], payload = r[5],
          attempts = attempts, max_attempts = max_attempts, timeout_ms = tonumber(r[6])}
      end
    end
  end
end
if #drops > 0 then
  redis.call('XACK', stream, 'workers', unpack(drops))
  redis.call('XDEL', stream, unpack(drops))
end
for field, n in pairs(delta) do
  if n ~= 0 then redis.call('HINCRBY', stats, field, n) end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
