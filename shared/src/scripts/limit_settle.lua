-- Settle a reserved call with the tokens the provider reported: the token schedule moves by the
-- difference (back for a call that used less than reserved, on for one that used more), and the
-- estimate learns (moving averages of the prompt's actual/estimated ratio and of the completion).
-- KEYS[1] budget hash
-- ARGV[1] tokens per window (0 = none)   ARGV[2] window ms   ARGV[3] tokens reserved
-- ARGV[4] prompt estimate (uncalibrated)   ARGV[5] prompt tokens   ARGV[6] completion tokens
-- Returns 1
local budget = KEYS[1]
local tpm, window, reserved = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local estimate, prompt, completion = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
-- Weight of the newest call in the moving averages.
local ALPHA = 0.2
local h = redis.call('HMGET', budget, 't', 'ratio', 'out')
if h[1] == false then
  -- Expired meanwhile: nothing to correct.
  return 1
end
if tpm > 0 then
  local next_t = tonumber(h[1]) + (prompt + completion - reserved) * window / tpm
  redis.call('HSET', budget, 't', next_t)
end
if estimate > 0 and prompt > 0 then
  local seen = math.min(math.max(prompt / estimate, 0.05), 20)
  local ratio = tonumber(h[2])
  ratio = ratio and (ratio * (1 - ALPHA) + seen * ALPHA) or seen
  redis.call('HSET', budget, 'ratio', ratio)
end
local out = tonumber(h[3])
out = out and (out * (1 - ALPHA) + completion * ALPHA) or completion
redis.call('HSET', budget, 'out', out)
return 1
