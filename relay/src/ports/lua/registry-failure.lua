-- Registry: count a failed activation attempt.
--
-- KEYS[1] activation  sr:{reg}:act:<lookup>
-- Returns the new failure count, 0 for an unknown lookup (nothing is created).

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], 'failures', 1)
