-- CommandQueue reapOverdue: commands with no terminal state whose token expired at or before a cutoff
-- (now - the relay's outcome grace) end `timed_out`, each returned to exactly one caller cluster-wide.
-- Any copy still held or in flight is removed, so it is never delivered after its deadline.
--
-- KEYS[1] open      sr:{cmdq}:open      zset: jti -> token expiry (see command-claim.lua)
-- KEYS[2] inflight  KEYS[3] inrec       (see held-take.lua)
-- KEYS[4] queue  KEYS[5] expiry  KEYS[6] member  KEYS[7] record   (see held-hold.lua)
-- ARGV[1] cutoff (ms)   ARGV[2] batch size   ARGV[3] record key prefix "sr:{cmdq}:cmd:"
-- The record hashes are read by prefix + jti: they share the {cmdq} hash tag, so the same slot on a Cluster.
-- Returns {record JSON, ...} of the commands set timed_out.

local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, jti in ipairs(due) do
  redis.call('ZREM', KEYS[1], jti)
  local key = ARGV[3] .. jti
  local s = redis.call('HGET', key, 's')
  local terminal = s == 'completed' or s == 'failed' or s == 'rejected' or s == 'expired' or s == 'timed_out'
  if s and not terminal then
    redis.call('HSET', key, 's', 'timed_out')
    redis.call('ZREM', KEYS[2], jti)
    redis.call('HDEL', KEYS[3], jti)
    local member = redis.call('HGET', KEYS[6], jti)
    if member then redis.call('ZREM', KEYS[4], member) end
    redis.call('ZREM', KEYS[5], jti)
    redis.call('HDEL', KEYS[6], jti)
    redis.call('HDEL', KEYS[7], jti)
    out[#out + 1] = redis.call('HGET', key, 'r')
  end
end
return out
