-- Held commands: take every unexpired one of a gateway, oldest first, removing them (exactly once).
-- Expired ones stay for held-reap.lua, which reports them `expired`.
--
-- KEYS[1] queue  KEYS[2] expiry  KEYS[3] member  KEYS[4] record   (see held-hold.lua)
-- ARGV[1] gateway   ARGV[2] now (ms)
-- Returns {record JSON, ...}.

local gw = ARGV[1]
local now = tonumber(ARGV[2])
local prefix = #gw + 19
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. gw .. '|', '(' .. gw .. '}')) do
  local jti = string.sub(m, prefix)
  local exp = redis.call('ZSCORE', KEYS[2], jti)
  if exp and tonumber(exp) > now then
    out[#out + 1] = redis.call('HGET', KEYS[4], jti)
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], jti)
    redis.call('HDEL', KEYS[3], jti)
    redis.call('HDEL', KEYS[4], jti)
  end
end
return out
