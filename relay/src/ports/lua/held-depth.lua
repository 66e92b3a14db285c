-- Held commands: how many unexpired commands a gateway has waiting.
--
-- KEYS[1] queue  KEYS[2] expiry   (see held-hold.lua)
-- ARGV[1] gateway   ARGV[2] now (ms)
-- Returns the count.

local gw = ARGV[1]
local now = tonumber(ARGV[2])
local prefix = #gw + 19
local depth = 0
for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '[' .. gw .. '|', '(' .. gw .. '}')) do
  local exp = redis.call('ZSCORE', KEYS[2], string.sub(m, prefix))
  if exp and tonumber(exp) > now then depth = depth + 1 end
end
return depth
