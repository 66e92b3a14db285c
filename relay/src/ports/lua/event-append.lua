-- EventLog append: seq dedupe + XADD + trim (count and age) + snapshot update, atomically.
--
-- KEYS[1] stream    sr:{site:<site>}:events   entries: e = event JSON
-- KEYS[2] meta      sr:{site:<site>}:meta     hash: epoch, lastms, trimmed (highest id dropped), n (snapshot clock)
-- KEYS[3] seq       sr:{site:<site>}:seq      hash: gateway -> highest seq stored
-- KEYS[4] snap      sr:{site:<site>}:snap     hash: subject -> "<id> <snapshot entry JSON>"
-- KEYS[5] snapz     sr:{site:<site>}:snapz    zset: subject -> last update (n), for the maxSubjects bound
-- ARGV[1] gateway   ARGV[2] seq (0: relay event, never deduped)   ARGV[3] now (ms, node clock)
-- ARGV[4] maxEvents ARGV[5] maxAgeMs   ARGV[6] maxSubjects   ARGV[7] epoch candidate (used if the site has none)
-- ARGV[8] subject ('' for none)   ARGV[9] event JSON
-- ARGV[10] Bus channel to publish the stored event on ('' for none), in the site's slot (sr:{site:<site>}:bus)
-- ARGV[11] Bus payload with ARGV[12] (a random placeholder) where the position goes
-- ARGV[13] 'spublish' on a Redis Cluster (sharded pub/sub), else 'publish'
-- Returns {1, epoch, id} when stored, {0, lastSeq} when (gateway, seq) is a duplicate.

local function parse(id)
  local ms, sq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(sq)
end

local function lt(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

local function note_trimmed(id)
  local cur = redis.call('HGET', KEYS[2], 'trimmed')
  if not cur or lt(cur, id) then redis.call('HSET', KEYS[2], 'trimmed', id) end
end

local seq = tonumber(ARGV[2])
if seq > 0 then
  local last = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if seq <= last then return {0, tostring(last)} end
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
end

redis.call('HSETNX', KEYS[2], 'epoch', ARGV[7])
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local now = tonumber(ARGV[3])

-- Stream ids carry the node clock's ms (so age trimming follows the injected clock), never going backwards.
local ms = now
local lastms = tonumber(redis.call('HGET', KEYS[2], 'lastms') or '0')
if lastms > ms then ms = lastms end
redis.call('HSET', KEYS[2], 'lastms', ms)
local id = redis.call('XADD', KEYS[1], string.format('%d-*', ms), 'e', ARGV[9])

-- Age, then count. Remember the highest id dropped: a reader behind it has missed events.
local minid = string.format('%d-0', now - tonumber(ARGV[5]))
local old = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
if #old > 0 then
  note_trimmed(old[1][1])
  redis.call('XTRIM', KEYS[1], 'MINID', minid)
end
local maxlen = tonumber(ARGV[4])
local len = redis.call('XLEN', KEYS[1])
if len > maxlen then
  local drop = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen)
  note_trimmed(drop[#drop][1])
  redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
end

if ARGV[8] ~= '' then
  local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
  redis.call('HSET', KEYS[4], ARGV[8], id .. ' ' .. ARGV[9])
  redis.call('ZADD', KEYS[5], n, ARGV[8])
  local over = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[6])
  if over > 0 then
    local gone = redis.call('ZPOPMIN', KEYS[5], over)
    for i = 1, #gone, 2 do redis.call('HDEL', KEYS[4], gone[i]) end
  end
end

if ARGV[10] ~= '' then
  local from, to = string.find(ARGV[11], ARGV[12], 1, true)
  local payload = ARGV[11]
  if from then payload = string.sub(payload, 1, from - 1) .. epoch .. '-' .. id .. string.sub(payload, to + 1) end
  redis.call(ARGV[13], ARGV[10], payload)
end

return {1, epoch, id}
