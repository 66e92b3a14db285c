-- Presence listSite: every gateway of a site online or offline within the retention, forgetting older ones.
--
-- KEYS[1] lease  KEYS[2] owner  KEYS[3] deadline  KEYS[4] offline  KEYS[5] site set   (see presence-claim.lua)
-- ARGV[1] now (ms)   ARGV[2] offline retention (ms)
-- Returns {gateway1, online1 (0|1), x1, gateway2, ...}: x is the lease record JSON when online (its `since`),
-- else the offline-since time (ms).

local now = tonumber(ARGV[1])
local out = {}
for _, gateway in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local deadline = redis.call('ZSCORE', KEYS[3], gateway)
  if deadline and tonumber(deadline) > now then
    out[#out + 1] = gateway
    out[#out + 1] = 1
    out[#out + 1] = redis.call('HGET', KEYS[1], gateway) or '{}'
  elseif deadline then
    -- Lapsed, not reaped yet: already offline in truth, since its deadline.
    out[#out + 1] = gateway
    out[#out + 1] = 0
    out[#out + 1] = deadline
  else
    local since = redis.call('HGET', KEYS[4], gateway)
    if since and tonumber(since) + tonumber(ARGV[2]) > now then
      out[#out + 1] = gateway
      out[#out + 1] = 0
      out[#out + 1] = since
    elseif not redis.call('HGET', KEYS[2], gateway) then
      redis.call('SREM', KEYS[5], gateway)
      redis.call('HDEL', KEYS[4], gateway)
    end
  end
end
return out
