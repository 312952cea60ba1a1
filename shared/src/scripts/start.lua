-- Start a batch of delivered entries of one queue: each task still runnable becomes `running`
-- under the consumer that holds its entry; the rest are acked and dropped (a task whose
-- cancellation was requested ends `cancelled`), and a task whose attempts are used up (its
-- workers kept dying) is dead-lettered. Ownership is read with one XPENDING over the batch's id
-- range, acks and deletes go in one call each, and the stats move once per batch.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4] dead stream   KEYS[5..] task hashes
-- ARGV[1] consumer   ARGV[2] now (RFC 3339)   ARGV[3] result TTL s   ARGV[4] events maxlen
-- ARGV[5] lowest, ARGV[6] highest entry id of the batch
-- ARGV[7..] entry id, task id pairs, in the order of KEYS[5..]
-- Returns one flat list, one record per entry in the order given: "run", kind, payload, attempts,
--   max_attempts, timeout_ms, resumed (1|0)  or  "skip"|"dead", reason. Flat instead of
--   cjson.encode, which cost about a sixth of the script.
local stream, stats, events, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local consumer, now, ttl, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out, drops, delta = {}, {}, {}
local function run(kind, payload, attempts, max_attempts, timeout_ms, resumed)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = 'run', kind, payload, attempts
  out[n + 5], out[n + 6], out[n + 7] = max_attempts, timeout_ms, resumed
end
local function refuse(status, reason)
  local n = #out
  out[n + 1], out[n + 2] = status, reason
end
if #KEYS < 5 then return out end

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
    refuse('skip', 'entry held by another consumer')
  else
    local r = redis.call('HMGET', task, 'state', 'attempts', 'max_attempts', 'kind', 'payload',
      'timeout_ms', 'entry', 'queue', 'cancel_requested', 'worker')
    local state = r[1]
    if state == 'running' and r[10] == consumer and r[7] == entry then
      -- Started here already: a start re-sent after a lost reply, or the entry delivered twice
      -- to this consumer. Not a new attempt; the worker runs it unless it is running it now.
      run(r[4], r[5], r[2], r[3], r[6], 1)
    elseif not state then
      drop(entry)
      refuse('skip', 'no task record')
    elseif state ~= 'queued' and state ~= 'running' then
      drop(entry)
      refuse('skip', 'task is ' .. state)
    elseif r[7] and r[7] ~= entry then
      -- A stale entry: the task was re-queued under a newer one.
      drop(entry)
      refuse('skip', 'superseded entry')
    elseif r[9] == '1' then
      -- Cancelled while its previous holder ran it; that holder died before acting on it.
      drop(entry)
      redis.call('HSET', task, 'state', 'cancelled', 'finished_at', now)
      redis.call('HDEL', task, 'entry')
      redis.call('EXPIRE', task, ttl)
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', 'cancelled')
      add(state, -1)
      add('cancelled', 1)
      refuse('skip', 'cancel requested')
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
        refuse('dead', err)
      else
        redis.call('HSET', task, 'state', 'running', 'attempts', attempts, 'started_at', now,
          'worker', consumer, 'entry', entry)
        run(r[4], r[5], attempts, r[3], r[6], 0)
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
return out
