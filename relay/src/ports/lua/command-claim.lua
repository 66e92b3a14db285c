-- CommandQueue claim-once, optionally with the hold in the same atomic step.
--
-- KEYS[1] record   sr:{cmdq}:cmd:<jti>   hash: r = CommandRecord JSON, k = keep-until (ms), s = latest state
-- KEYS[2] queue    sr:{cmdq}:q           (see held-hold.lua)
-- KEYS[3] expiry   sr:{cmdq}:exp
-- KEYS[4] member   sr:{cmdq}:m
-- KEYS[5] held     sr:{cmdq}:rec
-- KEYS[6] counter  sr:{cmdq}:ctr
-- KEYS[7] open     sr:{cmdq}:open   zset: jti -> token expiry, for every command without a terminal state
-- ARGV[1] record JSON   ARGV[2] keep-until (ms)   ARGV[3] now (ms)   ARGV[4] state   ARGV[5] Redis TTL backstop (ms)
-- ARGV[6] gateway   ARGV[7] jti   ARGV[8] expiresAt (ms)   ARGV[9] maxDepth ('' = claim only, no hold)
-- Returns {1} when claimed (and held), {0} when the jti is already claimed, {2, depth} when the gateway's
-- held queue is full (nothing recorded).

local keep = redis.call('HGET', KEYS[1], 'k')
local now = tonumber(ARGV[3])
if keep and tonumber(keep) > now then return {0} end

if ARGV[9] ~= '' then
  local gw = ARGV[6]
  local prefix = #gw + 19
  local depth = 0
  for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[2], '[' .. gw .. '|', '(' .. gw .. '}')) do
    local exp = redis.call('ZSCORE', KEYS[3], string.sub(m, prefix))
    if exp and tonumber(exp) > now then depth = depth + 1 end
  end
  if depth >= tonumber(ARGV[9]) then return {2, depth} end
  local n = redis.call('INCR', KEYS[6])
  local member = gw .. '|' .. string.format('%016d', n) .. '|' .. ARGV[7]
  redis.call('ZADD', KEYS[2], 0, member)
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[7])
  redis.call('HSET', KEYS[4], ARGV[7], member)
  redis.call('HSET', KEYS[5], ARGV[7], ARGV[1])
end

redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'k', ARGV[2], 's', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[7], ARGV[8], ARGV[7])
return {1}
