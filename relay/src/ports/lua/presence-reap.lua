-- Presence reap: pop leases whose deadline passed, mark them offline since their deadline. Exactly once:
-- a popped lease is gone for every later caller.
--
-- KEYS[1] lease  KEYS[2] owner  KEYS[3] deadline  KEYS[4] offline   (see presence-claim.lua)
-- ARGV[1] now (ms)   ARGV[2] most leases to pop in one call
-- Returns {record JSON, ...}.

local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  local gateway = due[i]
  local record = redis.call('HGET', KEYS[1], gateway)
  redis.call('HDEL', KEYS[1], gateway)
  redis.call('HDEL', KEYS[2], gateway)
  redis.call('ZREM', KEYS[3], gateway)
  redis.call('HSET', KEYS[4], gateway, due[i + 1])
  if record then out[#out + 1] = record end
end
return out
