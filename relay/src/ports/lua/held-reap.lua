-- Held commands: remove and return those whose token expired (any gateway), each to exactly one caller.
--
-- Also: taken commands no gateway state was recorded for before their redelivery deadline (the node that took
-- them may have died before writing them) are held again, or returned as expired if their token ran out.
--
-- KEYS[1] queue  KEYS[2] expiry  KEYS[3] member  KEYS[4] record  KEYS[5] counter   (see held-hold.lua)
-- KEYS[6] inflight  KEYS[7] inrec   (see held-take.lua)
-- ARGV[1] now (ms)   ARGV[2] most to return in one call
-- Returns {record JSON, ...}.

local out = {}
local now = tonumber(ARGV[1])
for _, jti in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local value = redis.call('HGET', KEYS[7], jti)
  redis.call('ZREM', KEYS[6], jti)
  redis.call('HDEL', KEYS[7], jti)
  if value then
    local gw, exp, record = string.match(value, '^(%S+) (%S+) (.*)$')
    if tonumber(exp) <= now then
      out[#out + 1] = record
    elseif redis.call('HEXISTS', KEYS[3], jti) == 0 then
      local n = redis.call('INCR', KEYS[5])
      local member = gw .. '|' .. string.format('%016d', n) .. '|' .. jti
      redis.call('ZADD', KEYS[1], 0, member)
      redis.call('ZADD', KEYS[2], exp, jti)
      redis.call('HSET', KEYS[3], jti, member)
      redis.call('HSET', KEYS[4], jti, record)
    end
  end
end

for _, jti in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local member = redis.call('HGET', KEYS[3], jti)
  if member then redis.call('ZREM', KEYS[1], member) end
  local record = redis.call('HGET', KEYS[4], jti)
  if record then out[#out + 1] = record end
  redis.call('ZREM', KEYS[2], jti)
  redis.call('HDEL', KEYS[3], jti)
  redis.call('HDEL', KEYS[4], jti)
end
return out
