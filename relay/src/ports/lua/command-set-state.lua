-- CommandQueue setState: record the latest state of a live command and keep it routable for `retain` more.
--
-- KEYS[1] record   sr:{cmdq}:cmd:<jti>   (see command-claim.lua)
-- ARGV[1] state   ARGV[2] now (ms)   ARGV[3] retain (ms)   ARGV[4] Redis TTL slack (ms)
-- Returns 1 when updated, 0 for an unknown or forgotten command.

local keep = redis.call('HGET', KEYS[1], 'k')
local now = tonumber(ARGV[2])
if not keep or tonumber(keep) <= now then return 0 end
local newKeep = math.max(tonumber(keep), now + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 's', ARGV[1], 'k', string.format('%d', newKeep))
redis.call('PEXPIRE', KEYS[1], newKeep - now + tonumber(ARGV[4]))
return 1
