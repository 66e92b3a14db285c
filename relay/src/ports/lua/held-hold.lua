-- Held commands: hold one for an offline gateway, at most maxDepth live ones per gateway.
--
-- KEYS[1] queue   sr:{cmdq}:q     zset, score 0, members "<gateway>|<16-digit counter>|<jti>" (lex order = age)
-- KEYS[2] expiry  sr:{cmdq}:exp   zset: jti -> token expiry (ms)
-- KEYS[3] member  sr:{cmdq}:m     hash: jti -> its queue member
-- KEYS[4] record  sr:{cmdq}:rec   hash: jti -> CommandRecord JSON
-- KEYS[5] counter sr:{cmdq}:ctr   counter for queue order
-- ARGV[1] gateway   ARGV[2] jti   ARGV[3] expiresAt (ms)   ARGV[4] maxDepth   ARGV[5] now (ms)   ARGV[6] record JSON
-- Returns {1, depth} when held (or already held), {0, depth} when the gateway's queue is full.

local gw = ARGV[1]
local now = tonumber(ARGV[5])
local prefix = #gw + 19
local depth = 0
for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. gw .. '|', '(' .. gw .. '}')) do
  local exp = redis.call('ZSCORE', KEYS[2], string.sub(m, prefix))
  if exp and tonumber(exp) > now then depth = depth + 1 end
end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return {1, depth} end
if depth >= tonumber(ARGV[4]) then return {0, depth} end
local n = redis.call('INCR', KEYS[5])
local member = gw .. '|' .. string.format('%016d', n) .. '|' .. ARGV[2]
redis.call('ZADD', KEYS[1], 0, member)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], member)
redis.call('HSET', KEYS[4], ARGV[2], ARGV[6])
return {1, depth + 1}
