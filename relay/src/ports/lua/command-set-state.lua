-- CommandQueue setState: record the latest state of a live command and keep it routable for `retain` more.
--
-- KEYS[1] record   sr:{cmdq}:cmd:<jti>   (see command-claim.lua)
-- KEYS[2] inflight sr:{cmdq}:inflight   KEYS[3] inrec sr:{cmdq}:inrec   (see held-take.lua)
-- KEYS[4] open     sr:{cmdq}:open   (see command-claim.lua)
-- ARGV[1] state   ARGV[2] now (ms)   ARGV[3] retain (ms)   ARGV[4] Redis TTL slack (ms)
-- ARGV[5] '1' when the state is one a gateway reports (it has the command: no redelivery), else ''
-- ARGV[6] '1' when the new state is terminal
-- Returns 1 when updated, 0 for an unknown or forgotten command, 2 when it already has a terminal state
-- (a terminal state is final: exactly one per command, whichever node records it first).

local keep = redis.call('HGET', KEYS[1], 'k')
local now = tonumber(ARGV[2])
if not keep or tonumber(keep) <= now then return 0 end
local current = redis.call('HGET', KEYS[1], 's')
if current == 'completed' or current == 'failed' or current == 'rejected' or current == 'expired'
  or current == 'timed_out' then return 2 end
local newKeep = math.max(tonumber(keep), now + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 's', ARGV[1], 'k', string.format('%d', newKeep))
redis.call('PEXPIRE', KEYS[1], newKeep - now + tonumber(ARGV[4]))
if ARGV[5] == '1' then
  local jti = string.match(KEYS[1], ':cmd:(.*)$')
  redis.call('ZREM', KEYS[2], jti)
  redis.call('HDEL', KEYS[3], jti)
end
if ARGV[6] == '1' then
  redis.call('ZREM', KEYS[4], string.match(KEYS[1], ':cmd:(.*)$'))
end
return 1
