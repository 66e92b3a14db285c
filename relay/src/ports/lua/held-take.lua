-- Held commands: take every unexpired one of a gateway, oldest first, removing them (exactly once).
-- Expired ones stay for held-reap.lua, which reports them `expired`.
--
-- The result is also kept under a per-call id for a minute: if Redis executed the take but the reply was
-- lost (connection dropped, Redis shutting down), the caller retries with the same id and gets the same
-- commands instead of losing them.
--
-- KEYS[1] queue  KEYS[2] expiry  KEYS[3] member  KEYS[4] record   (see held-hold.lua)
-- KEYS[5] result    sr:{cmdq}:take:<call id>   list of record JSON
-- KEYS[6] inflight  sr:{cmdq}:inflight   zset: taken jti -> redelivery deadline (cleared by a gateway state)
-- KEYS[7] inrec     sr:{cmdq}:inrec      hash: taken jti -> "<gateway> <expiresAt> <record JSON>"
-- ARGV[1] gateway   ARGV[2] now (ms)   ARGV[3] result retention (ms)   ARGV[4] redeliver after (ms)
-- Returns {record JSON, ...}.

if redis.call('EXISTS', KEYS[5]) == 1 then return redis.call('LRANGE', KEYS[5], 0, -1) end

local gw = ARGV[1]
local now = tonumber(ARGV[2])
local prefix = #gw + 19
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. gw .. '|', '(' .. gw .. '}')) do
  local jti = string.sub(m, prefix)
  local exp = redis.call('ZSCORE', KEYS[2], jti)
  if exp and tonumber(exp) > now then
    local record = redis.call('HGET', KEYS[4], jti)
    out[#out + 1] = record
    redis.call('ZADD', KEYS[6], now + tonumber(ARGV[4]), jti)
    redis.call('HSET', KEYS[7], jti, gw .. ' ' .. exp .. ' ' .. record)
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZREM', KEYS[2], jti)
    redis.call('HDEL', KEYS[3], jti)
    redis.call('HDEL', KEYS[4], jti)
  end
end
if #out > 0 then
  redis.call('RPUSH', KEYS[5], unpack(out))
  redis.call('PEXPIRE', KEYS[5], ARGV[3])
end
return out
