-- Presence heartbeat: extend the lease if this connection still owns it (until reaped, even past its deadline).
--
-- KEYS[1] owner     sr:{presence}:owner
-- KEYS[2] deadline  sr:{presence}:deadline
-- ARGV[1] gateway   ARGV[2] connection   ARGV[3] new deadline (ms)
-- Returns 1 if extended, 0 if this connection is not the owner (replaced, released or reaped).

if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
