-- CommandQueue claim-once: record a command by jti unless a live record exists.
--
-- KEYS[1] record   sr:cmd:<jti>   hash: r = CommandRecord JSON, k = keep-until (ms), s = latest state
-- ARGV[1] record JSON   ARGV[2] keep-until (ms)   ARGV[3] now (ms)   ARGV[4] state   ARGV[5] Redis TTL backstop (ms)
-- Returns 1 when claimed, 0 when the jti is already claimed.

local keep = redis.call('HGET', KEYS[1], 'k')
if keep and tonumber(keep) > tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'k', ARGV[2], 's', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
