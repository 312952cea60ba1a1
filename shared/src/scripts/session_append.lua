-- Append one chat turn (user message and answer) to a session, once: a re-run of the same task
-- (at-least-once delivery) finds its marker and appends nothing. Caps and refreshes the history.
-- KEYS[1] session list
-- ARGV[1] task id   ARGV[2] user message JSON   ARGV[3] assistant message JSON
-- ARGV[4] max messages   ARGV[5] TTL s
-- Returns 1 if appended, 0 if this task's turn was already there
local session, id = KEYS[1], ARGV[1]
local tail = redis.call('LRANGE', session, -2, -1)
for _, m in ipairs(tail) do
  local ok, decoded = pcall(cjson.decode, m)
  if ok and type(decoded) == 'table' and decoded.task_id == id then
    return 0
  end
end
redis.call('RPUSH', session, ARGV[2], ARGV[3])
redis.call('LTRIM', session, -tonumber(ARGV[4]), -1)
redis.call('EXPIRE', session, tonumber(ARGV[5]))
return 1
