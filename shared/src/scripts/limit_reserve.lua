-- Reserve a provider call against a budget all workers share, or report the pause a provider
-- asked for. The budget is a schedule (GCRA without burst): `r` and `t` hold the earliest time
-- the next request may start under the request and the token limit. A call starts at the later
-- of now and both, and pushes each on by its cost at the limit's rate, so the starts in any
-- window add up to at most one window's limit plus one call, from the very first window on (no
-- full bucket to spend at once), and a worker learns at once how long to sleep: no polling, and
-- waiters are served in the order they asked. Time is Redis' own clock, the one clock the fleet
-- shares.
-- KEYS[1] budget hash   KEYS[2] pause key (absent for a budget no provider pauses: a tenant's)
-- ARGV[1] requests per window (0 = none)   ARGV[2] tokens per window (0 = none)
-- ARGV[3] window ms   ARGV[4] prompt estimate (tokens, uncalibrated)
-- ARGV[5] most completion tokens the call may produce (0 = no cap)
-- Returns {pause_ms, wait_ms, cost}: pause_ms > 0 = paused, nothing reserved; otherwise the call
-- may start in wait_ms and holds `cost` tokens until settled.
local budget, pause = KEYS[1], KEYS[2]
if pause then
  local paused = redis.call('PTTL', pause)
  if paused > 0 then
    return {paused, 0, 0}
  end
end
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local prompt, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local h = redis.call('HMGET', budget, 'r', 't', 'ratio', 'out')
local next_r, next_t = tonumber(h[1]) or 0, tonumber(h[2]) or 0
local ratio, out = tonumber(h[3]) or 1, tonumber(h[4]) or 0
if cap > 0 and out > cap then out = cap end
local cost = math.ceil(prompt * ratio + out)
if cost < 1 then cost = 1 end
local start = now
if rpm > 0 and next_r > start then start = next_r end
if tpm > 0 and next_t > start then start = next_t end
if rpm > 0 then next_r = start + window / rpm end
if tpm > 0 then next_t = start + cost * window / tpm end
redis.call('HSET', budget, 'r', next_r, 't', next_t)
-- Kept while its schedule lies ahead, and a while after so the calibration survives pauses.
redis.call('PEXPIRE', budget, math.ceil(math.max(next_r, next_t) - now) + 60 * window)
return {0, math.ceil(start - now), cost}
