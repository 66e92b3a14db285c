-- Presence get: the live lease, if its deadline is in the future.
--
-- KEYS[1] lease  KEYS[2] deadline   (see presence-claim.lua)
-- ARGV[1] gateway   ARGV[2] now (ms)
-- Returns the record JSON, or false.

local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) <= tonumber(ARGV[2]) then return false end
return redis.call('HGET', KEYS[1], ARGV[1])
