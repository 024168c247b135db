-- One admission tick: drop expired actives, then move the head of the line to active, at most
-- ADMIT_BATCH users and never past MAX_ACTIVE. Idempotent per time slot: every worker on every
-- host may call it, and only the first call of a slot admits anyone.
-- KEYS: waiting zset, active zset, last-slot key, admissions counter.
-- ARGV: max active, batch, interval ms, active TTL ms.
-- Returns {won, admitted}: won = 1 when this call ran the slot's tick.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local maxActive = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])

local slot = math.floor(now / interval)
local last = tonumber(redis.call('GET', KEYS[3]) or '-1')
if last >= slot then return {0, 0} end
redis.call('SET', KEYS[3], slot)

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local room = math.min(batch, maxActive - redis.call('ZCARD', KEYS[2]))
if room <= 0 then return {1, 0} end

local popped = redis.call('ZPOPMIN', KEYS[1], room)
local admitted = 0
for i = 1, #popped, 2 do
  redis.call('ZADD', KEYS[2], now + ttl, popped[i])
  admitted = admitted + 1
end
if admitted > 0 then redis.call('INCRBY', KEYS[4], admitted) end
return {1, admitted}
