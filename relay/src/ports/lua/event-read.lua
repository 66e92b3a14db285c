-- EventLog read: age-trim, then the events after a position, or a gap.
--
-- KEYS[1] stream  sr:{site:<site>}:events
-- KEYS[2] meta    sr:{site:<site>}:meta
-- ARGV[1] epoch candidate   ARGV[2] reader's epoch ('' when unparseable)   ARGV[3] reader's stream id ('' when
-- unparseable)   ARGV[4] limit   ARGV[5] now (ms)   ARGV[6] maxAgeMs
-- Returns {epoch, head id, gap (0|1), id1, json1, id2, json2, ...}

local function parse(id)
  local ms, sq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(sq)
end

local function lt(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

redis.call('HSETNX', KEYS[2], 'epoch', ARGV[1])
local epoch = redis.call('HGET', KEYS[2], 'epoch')

local minid = string.format('%d-0', tonumber(ARGV[5]) - tonumber(ARGV[6]))
local old = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
if #old > 0 then
  local cur = redis.call('HGET', KEYS[2], 'trimmed')
  if not cur or lt(cur, old[1][1]) then redis.call('HSET', KEYS[2], 'trimmed', old[1][1]) end
  redis.call('XTRIM', KEYS[1], 'MINID', minid)
end

local head = '0-0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  head = last[1][1]
else
  -- Everything was trimmed: the head is still the last id handed out, which is the highest trimmed one.
  head = redis.call('HGET', KEYS[2], 'trimmed') or '0-0'
end

local since = ARGV[3]
if ARGV[2] ~= epoch or since == '' or parse(since) == nil then return {epoch, head, 1} end
if lt(head, since) then return {epoch, head, 1} end
local trimmed = redis.call('HGET', KEYS[2], 'trimmed')
if trimmed and lt(since, trimmed) then return {epoch, head, 1} end

local out = {epoch, head, 0}
local entries = redis.call('XRANGE', KEYS[1], '(' .. since, '+', 'COUNT', tonumber(ARGV[4]))
for _, entry in ipairs(entries) do
  out[#out + 1] = entry[1]
  -- entry[2] is {field, value}: the single field `e`.
  out[#out + 1] = entry[2][2]
end
return out
