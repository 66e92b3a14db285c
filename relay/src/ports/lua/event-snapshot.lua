-- EventLog snapshot: the site's epoch, head and latest state per subject (least recently updated first).
--
-- KEYS[1] stream  sr:{site:<site>}:events
-- KEYS[2] meta    sr:{site:<site>}:meta
-- KEYS[3] snap    sr:{site:<site>}:snap    subject -> "<id> <entry JSON>"
-- KEYS[4] snapz   sr:{site:<site>}:snapz   subject -> update counter
-- ARGV[1] epoch candidate
-- Returns {epoch, head id, subject1, value1, subject2, value2, ...}

redis.call('HSETNX', KEYS[2], 'epoch', ARGV[1])
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local head
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then head = last[1][1] else head = redis.call('HGET', KEYS[2], 'trimmed') or '0-0' end

local out = {epoch, head}
local subjects = redis.call('ZRANGE', KEYS[4], 0, -1)
for _, subject in ipairs(subjects) do
  local value = redis.call('HGET', KEYS[3], subject)
  if value then
    out[#out + 1] = subject
    out[#out + 1] = value
  end
end
return out
