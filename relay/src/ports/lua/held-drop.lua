-- Held commands: remove and return everything held for one gateway (revocation).
--
-- KEYS[1] queue  KEYS[2] expiry  KEYS[3] member  KEYS[4] record   (see held-hold.lua)
-- KEYS[5] inflight  KEYS[6] inrec   (see held-take.lua): the gateway's taken, unacknowledged ones are forgotten
-- ARGV[1] gateway
-- Returns {record JSON, ...}, oldest first.

local gw = ARGV[1]
local prefix = #gw + 19
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. gw .. '|', '(' .. gw .. '}')) do
  local jti = string.sub(m, prefix)
  local record = redis.call('HGET', KEYS[4], jti)
  if record then out[#out + 1] = record end
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZREM', KEYS[2], jti)
  redis.call('HDEL', KEYS[3], jti)
  redis.call('HDEL', KEYS[4], jti)
end
for _, jti in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  local value = redis.call('HGET', KEYS[6], jti)
  if value and string.sub(value, 1, #gw + 1) == gw .. ' ' then
    redis.call('ZREM', KEYS[5], jti)
    redis.call('HDEL', KEYS[6], jti)
  end
end
return out
