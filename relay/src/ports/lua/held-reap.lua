-- Held commands: remove and return those whose token expired (any gateway), each to exactly one caller.
--
-- KEYS[1] queue  KEYS[2] expiry  KEYS[3] member  KEYS[4] record   (see held-hold.lua)
-- ARGV[1] now (ms)   ARGV[2] most to return in one call
-- Returns {record JSON, ...}.

local out = {}
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
