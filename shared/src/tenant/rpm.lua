-- A tenant's requests-per-minute window: admits `cost` more tasks if the window has room.
-- A fixed window that opens with the first admitted task of a quiet tenant and lasts ARGV[3]
-- ms; a refused request costs nothing, so a client retrying too early does not push its own
-- window further.
-- KEYS[1]: the tenant's window counter (string, expires with the window)
-- ARGV[1]: the limit (tasks per window); ARGV[2]: the cost of this request (tasks);
-- ARGV[3]: the window length, ms
-- Returns {1, 0} when admitted, {0, ms until the window ends} when refused.
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
if used + cost > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = window end
  return {0, ttl}
end
redis.call('INCRBY', KEYS[1], cost)
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
end
return {1, 0}
