-- Presence release: drop the lease if this connection owns it, and mark the gateway offline.
--
-- KEYS[1] lease  KEYS[2] owner  KEYS[3] deadline  KEYS[4] offline   (see presence-claim.lua)
-- ARGV[1] gateway   ARGV[2] connection   ARGV[3] now (ms)
-- Returns 1 if released, 0 if this connection was not the owner.

if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
return 1
