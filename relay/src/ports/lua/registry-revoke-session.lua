-- Registry: revoke a browser session id until a time (a later revocation never shortens an earlier one),
-- and forget revocations that have ended.
--
-- KEYS[1] sessions  sr:{reg}:sessions   zset: sid -> revoked until (ms)
-- ARGV[1] sid   ARGV[2] until (ms)   ARGV[3] now (ms)
-- Returns 1.

local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not current or tonumber(current) < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return 1
