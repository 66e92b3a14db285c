-- Registry: create a pending gateway and its activation record, unless either exists.
--
-- KEYS[1] gateway     sr:{reg}:gw:<id>        hash: base (JSON), status, publicKey, thumbprint, activatedAt, revokedAt
-- KEYS[2] activation  sr:{reg}:act:<lookup>   hash: base (JSON), gateway, expiresAt, failures, used (0|1)
-- KEYS[3] index       sr:{reg}:gws            set of gateway ids
-- ARGV[1] gateway id   ARGV[2] gateway base JSON   ARGV[3] status   ARGV[4] activation base JSON
-- ARGV[5] expiresAt   ARGV[6] failures   ARGV[7] used (0|1)
-- ARGV[8] publicKey JSON   ARGV[9] thumbprint   ARGV[10] activatedAt   ARGV[11] revokedAt   ('' when absent;
-- set when a gateway is imported already active, e.g. by a migration or a test fixture)
-- Returns 'ok', 'gateway_exists' or 'lookup_exists'.

if redis.call('EXISTS', KEYS[1]) == 1 then return 'gateway_exists' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'lookup_exists' end
redis.call('HSET', KEYS[1], 'base', ARGV[2], 'status', ARGV[3])
redis.call('HSET', KEYS[2], 'base', ARGV[4], 'gateway', ARGV[1], 'expiresAt', ARGV[5], 'failures', ARGV[6], 'used', ARGV[7])
local optional = {publicKey = ARGV[8], thumbprint = ARGV[9], activatedAt = ARGV[10], revokedAt = ARGV[11]}
for field, value in pairs(optional) do
  if value ~= '' then redis.call('HSET', KEYS[1], field, value) end
end
redis.call('SADD', KEYS[3], ARGV[1])
return 'ok'
