-- Registry: revoke a gateway (the first revocation time is kept).
--
-- KEYS[1] gateway  sr:{reg}:gw:<id>
-- ARGV[1] now (ms)
-- Returns 1 if the gateway exists (now revoked), 0 if unknown.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'revoked' then
  redis.call('HSET', KEYS[1], 'status', 'revoked', 'revokedAt', ARGV[1])
end
return 1
