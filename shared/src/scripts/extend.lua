-- Keep the leases of a worker's running entries fresh, all of one queue in one call: read this
-- consumer's pending list with one XPENDING range (paged only when it holds more than a page),
-- then reset the idle time of every listed entry it still holds with one multi-id
-- XCLAIM … JUSTID (which does not bump the delivery count). An entry another worker took is left
-- alone and reported, so its task can be abandoned here (fencing).
-- KEYS[1] stream
-- ARGV[1] consumer   ARGV[2..] entry ids
-- Returns JSON list of the entry ids this consumer no longer holds
local stream, consumer = KEYS[1], ARGV[1]
-- XCLAIM ids per call: far below the Lua C stack limit that unpack() runs into.
local CLAIM_CHUNK = 1000
local asked = #ARGV - 1
local page_size = asked + 64
local held = {}
local from = '-'
while true do
  local page = redis.call('XPENDING', stream, 'workers', from, '+', page_size, consumer)
  for _, p in ipairs(page) do
    held[p[1]] = true
  end
  if #page < page_size then break end
  from = '(' .. page[#page][1]
end
local lost = {}
local claim = {}
local function flush()
  if #claim == 0 then return end
  local args = {'XCLAIM', stream, 'workers', consumer, 0}
  for _, e in ipairs(claim) do args[#args + 1] = e end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
  claim = {}
end
for i = 2, #ARGV do
  local entry = ARGV[i]
  if held[entry] then
    claim[#claim + 1] = entry
    if #claim == CLAIM_CHUNK then flush() end
  else
    lost[#lost + 1] = entry
  end
end
flush()
if #lost == 0 then return '[]' end
return cjson.encode(lost)
