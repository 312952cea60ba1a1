-- Start a batch of entries of one queue that may have a task hash: reference entries (a task
-- promoted, replayed or handed back: the entry carries only `id`, the hash the record) and
-- entries reclaimed from another consumer (delivered more than once). A fresh entry delivered
-- once needs none of this: the worker runs it at once. Nothing is written for a task that runs
-- (its entry pending here is what makes it running); the rest are acked and dropped (a task
-- whose cancellation was requested ends `cancelled`), and a task whose attempts are used up
-- (its workers kept dying) is dead-lettered. Ownership and delivery counts come from one
-- XPENDING over the batch's id range; acks and deletes go in one call each.
-- KEYS[1] stream   KEYS[2] stats   KEYS[3] events   KEYS[4] dead stream   KEYS[5..] task hashes
-- ARGV[1] consumer   ARGV[2] now (RFC 3339)   ARGV[3] result TTL s   ARGV[4] events maxlen
-- ARGV[5] lowest, ARGV[6] highest entry id of the batch
-- ARGV[7..] entry id, task id pairs, in the order of KEYS[5..]
-- Returns one flat list, per entry in the order given: "run", attempts, "hash", kind, payload,
--   max_attempts, timeout_ms, tenant  or  "run", attempts, "entry", {entry fields}  or
--   "skip"|"dead", reason.
local stream, stats, events, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local consumer, now, ttl, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out, drops, delta = {}, {}, {}
local function push(...)
  for _, v in ipairs({...}) do out[#out + 1] = v end
end
if #KEYS < 5 then return out end

local function add(field, n) delta[field] = (delta[field] or 0) + n end
local function drop(entry) drops[#drops + 1] = entry end
local function event(id, state)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'state', state)
end

-- The queue of a fresh entry's task: its id minus the entry, minus its lane (after a '.').
local function queue_of(id, entry)
  return string.match(string.sub(id, 1, #id - #entry - 1), '^[^.]+')
end

local owned = {}
for _, p in ipairs(redis.call('XPENDING', stream, 'workers', ARGV[5], ARGV[6], 100000,
    consumer)) do
  owned[p[1]] = p[4]
end

-- The end of a task that never ran to completion here: `fields` is the record to write when no
-- hash holds it yet (a fresh entry's), or nil.
local function finish(task, id, entry, fields, state, ...)
  if fields then
    local queue = queue_of(id, entry)
    redis.call('HSET', task, 'id', id, 'queue', queue, unpack(fields))
  end
  redis.call('HSET', task, 'state', state, 'finished_at', now, ...)
  redis.call('HDEL', task, 'entry')
  event(id, state)
  add(state, 1)
  drop(entry)
end

local function dead_letter(task, id, entry, fields, queue, attempts, max_attempts)
  local err = 'attempt ' .. attempts .. ' exceeds max_attempts (' .. max_attempts ..
    '): every earlier attempt was lost with its worker'
  local dead_entry = redis.call('XADD', dead, '*', 'id', id, 'queue', queue,
    'error', err, 'attempts', attempts - 1, 'at', now)
  finish(task, id, entry, fields, 'dead', 'error', err, 'attempts', attempts - 1,
    'dead_entry', dead_entry)
  push('dead', err)
end

for i = 5, #KEYS do
  local task = KEYS[i]
  local entry = ARGV[7 + (i - 5) * 2]
  local id = ARGV[8 + (i - 5) * 2]
  local deliveries = owned[entry]
  if not deliveries then
    -- Another consumer claimed the entry since it was delivered here: it is theirs to run.
    push('skip', 'entry held by another consumer')
  else
    local r = redis.call('HMGET', task, 'state', 'attempts', 'max_attempts', 'entry',
      'cancel_requested', 'kind', 'payload', 'timeout_ms', 'queue', 'tenant')
    local state, fields, max_attempts, attempts = r[1], nil, nil, nil
    if state then
      attempts, max_attempts = tonumber(r[2]) + deliveries, tonumber(r[3])
    else
      -- No record in a hash: a fresh entry carries it (reclaimed from a lost consumer).
      local e = redis.call('XRANGE', stream, entry, entry)[1]
      fields = e and e[2] or {}
      for k = 1, #fields, 2 do
        if fields[k] == 'max_attempts' then max_attempts = tonumber(fields[k + 1])
        elseif fields[k] == 'id' then max_attempts = nil break end
      end
      attempts = deliveries
    end
    if not state and not max_attempts then
      drop(entry)
      push('skip', 'no task record')
    elseif state and state ~= 'queued' then
      drop(entry)
      push('skip', 'task is ' .. state)
    elseif state and r[4] ~= entry then
      -- A stale entry: the task was re-queued under a newer one.
      drop(entry)
      push('skip', 'superseded entry')
    elseif r[5] == '1' then
      -- Cancelled while its previous holder ran it; that holder died before acting on it.
      finish(task, id, entry, fields, 'cancelled')
      redis.call('EXPIRE', task, ttl)
      push('skip', 'cancel requested')
    else
      if deliveries > 1 then add('reclaimed', 1) end
      if attempts > max_attempts then
        local queue = r[9] or queue_of(id, entry)
        dead_letter(task, id, entry, fields, queue, attempts, max_attempts)
      elseif state then
        push('run', attempts, 'hash', r[6], r[7], r[3], r[8], r[10])
      else
        push('run', attempts, 'entry', fields)
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
