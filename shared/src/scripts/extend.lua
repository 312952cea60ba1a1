-- Keep the leases of a worker's running entries fresh: reset the idle time of each entry that is
-- still pending under this consumer (XCLAIM JUSTID does not bump the delivery count). An entry
-- another worker took is left alone and reported, so its task can be abandoned here.
-- KEYS[1] stream
-- ARGV[1] consumer   ARGV[2..] entry ids
-- Returns JSON list of the entry ids this consumer no longer holds
local stream, consumer = KEYS[1], ARGV[1]
local lost = {}
for i = 2, #ARGV do
  local entry = ARGV[i]
  local owned = redis.call('XPENDING', stream, 'workers', entry, entry, 1, consumer)
  if #owned == 0 then
    lost[#lost + 1] = entry
  else
    redis.call('XCLAIM', stream, 'workers', consumer, 0, entry, 'JUSTID')
  end
end
if #lost == 0 then return '[]' end
return cjson.encode(lost)
