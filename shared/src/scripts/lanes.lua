-- Prune a queue's lanes set: a lane whose stream is empty (nothing waiting, nothing running) is
-- removed, atomically with the check. Whoever appends to a lane adds it to the set after the
-- XADD, so a lane is never removed while it holds an entry: either this check sees the entry,
-- or the SADD comes after the SREM.
-- KEYS[1] lanes set   KEYS[2..] the lanes' streams
-- ARGV[1..] the lanes, in the order of KEYS[2..]
-- Returns the lanes kept
local kept = {}
for i = 2, #KEYS do
  if redis.call('XLEN', KEYS[i]) == 0 then
    redis.call('SREM', KEYS[1], ARGV[i - 1])
  else
    kept[#kept + 1] = ARGV[i - 1]
  end
end
return kept
