-- Held commands: remove and return everything held for one gateway (revocation).
--
-- KEYS[1] queue  KEYS[2] expiry  KEYS[3] member  KEYS[4] record   (see held-hold.lua)
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
return out
