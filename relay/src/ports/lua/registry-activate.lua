-- Registry: activate once. Checks unused, unexpired, not locked, gateway not revoked; then marks the code
-- used and binds the key. Exactly one of concurrent callers gets 'ok'.
--
-- KEYS[1] activation  sr:{reg}:act:<lookup>   (see registry-create.lua)
-- KEYS[2] gateway     sr:{reg}:gw:<id>        the gateway the caller read from the activation record
-- ARGV[1] gateway id   ARGV[2] now (ms)   ARGV[3] maxFailures   ARGV[4] public JWK JSON   ARGV[5] thumbprint
-- Returns 'ok', 'unknown', 'used', 'expired', 'locked' or 'revoked'.

if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
if redis.call('HGET', KEYS[1], 'gateway') ~= ARGV[1] then return 'unknown' end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'unknown' end
if redis.call('HGET', KEYS[2], 'status') == 'revoked' then return 'revoked' end
if redis.call('HGET', KEYS[1], 'used') == '1' then return 'used' end
if tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') >= tonumber(ARGV[3]) then return 'locked' end
if tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) <= tonumber(ARGV[2]) then return 'expired' end
redis.call('HSET', KEYS[1], 'used', '1')
redis.call('HSET', KEYS[2], 'status', 'active', 'publicKey', ARGV[4], 'thumbprint', ARGV[5], 'activatedAt', ARGV[2])
return 'ok'
