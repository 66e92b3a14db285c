-- Presence claim: take the gateway's lease for this connection; return the record it replaced.
--
-- KEYS[1] lease     sr:{presence}:lease       hash: gateway -> PresenceRecord JSON
-- KEYS[2] owner     sr:{presence}:owner       hash: gateway -> connection id
-- KEYS[3] deadline  sr:{presence}:deadline    zset: gateway -> lease deadline (ms)
-- KEYS[4] offline   sr:{presence}:offline     hash: gateway -> offline since (ms)
-- KEYS[5] site      sr:{presence}:site:<site> set of the site's gateways (for listSite)
-- ARGV[1] gateway   ARGV[2] record JSON   ARGV[3] connection   ARGV[4] deadline (ms)
-- Returns the previous record JSON when another connection owned the gateway (lapsed or not), else false.

local previous = redis.call('HGET', KEYS[1], ARGV[1])
local previousOwner = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
if previous and previousOwner ~= ARGV[3] then return previous end
return false
