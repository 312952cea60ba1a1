-- Read one task wherever it lives, atomically (a task finishing between two separate reads
-- would otherwise be found nowhere): its hash; when the hash holds no state, the stream entry
-- its id names (a task born in its stream, queued or running); and the pending info of its
-- current entry. Read-only.
-- KEYS[1] task hash   KEYS[2] stream
-- ARGV[1] the entry the id names ('' for a {queue}-{ULID} id)
-- Returns {hash as a flat list, entry id or '', entry fields as a flat list,
--   pending {consumer, idle ms, deliveries} or {}}
local task, stream = KEYS[1], KEYS[2]
local h = redis.call('HGETALL', task)
local state, current
for i = 1, #h, 2 do
  if h[i] == 'state' then state = h[i + 1] elseif h[i] == 'entry' then current = h[i + 1] end
end
local fields = {}
if state then
  -- Only a queued task's entry may be pending (running); every other state has left the stream.
  if state ~= 'queued' or not current then return {h, '', fields, {}} end
else
  current = ARGV[1]
  if current == '' then return {h, '', fields, {}} end
  local r = redis.call('XRANGE', stream, current, current)
  if #r == 0 then return {h, '', fields, {}} end
  fields = r[1][2]
end
-- pcall: before any worker created the group, nothing is pending (XPENDING answers NOGROUP).
local p = redis.pcall('XPENDING', stream, 'workers', current, current, 1)
local pending = {}
if not p.err and #p > 0 then pending = {p[1][2], p[1][3], p[1][4]} end
return {h, current, fields, pending}
