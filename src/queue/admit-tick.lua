-- One admission tick of one concert's queue: drop expired actives and stale waiters (at most
-- ARGV drop limit of each), then move the head of the line to active, at most the batch in force
-- and never past its max active. Every worker on every host calls it; only a call at least one
-- interval after the last tick runs one. The last tick's time, not a slot number, is stored, so
-- a changed interval takes effect at once, and a stored time in the future (the Redis clock went
-- back, a failover to a host whose clock is behind) counts as stale instead of stalling admission.
-- KEYS: concert hash, waiting zset, pre-queue zset, seen zset, active zset, admitted zset,
--       admissions counter, admission log zset.
-- ARGV: default max active, default batch, default interval ms, active TTL ms, active max ms,
--       waiting TTL ms, drop limit.
-- Returns {won, admitted, interval in force, sale due}: sale due = 1 when the opening has passed
-- and open-sale.lua must shuffle the pre-queue first (nothing else was done).
local now = now_ms()
local s = settings(KEYS[1], { maxActive = ARGV[1], batch = ARGV[2], interval = ARGV[3] })
if not s then return {0, 0, tonumber(ARGV[3]), 0} end
if now < s.opensAt then return {0, 0, s.interval, 0} end
if not s.opened then return {0, 0, s.interval, 1} end
if s.lastTick and s.lastTick <= now and now - s.lastTick < s.interval then return {0, 0, s.interval, 0} end
redis.call('HSET', KEYS[1], 'lastTick', now)

local activeTtl, activeMax, waitingTtl, dropLimit = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, dropLimit)) do
  redis.call('ZREM', KEYS[5], user)
  redis.call('ZREM', KEYS[6], user)
end
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. (now - waitingTtl), 'LIMIT', 0, dropLimit)) do
  redis.call('ZREM', KEYS[2], user)
  redis.call('ZREM', KEYS[3], user)
  redis.call('ZREM', KEYS[4], user)
end
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - 60000)
if s.paused then return {1, 0, s.interval, 0} end

local room = math.min(s.batch, s.maxActive - redis.call('ZCARD', KEYS[5]))
local admitted = 0
-- Stale waiters past the drop limit may still sit at the head: skipped, never admitted.
local budget = room + dropLimit
while admitted < room and budget > 0 do
  local head = redis.call('ZPOPMIN', KEYS[2])
  if #head == 0 then break end
  budget = budget - 1
  local user = head[1]
  local last = redis.call('ZSCORE', KEYS[4], user)
  redis.call('ZREM', KEYS[4], user)
  if last and tonumber(last) >= now - waitingTtl then
    redis.call('ZADD', KEYS[5], math.min(now + activeTtl, now + activeMax), user)
    redis.call('ZADD', KEYS[6], now, user)
    admitted = admitted + 1
  end
end
if admitted > 0 then
  redis.call('INCRBY', KEYS[7], admitted)
  redis.call('ZADD', KEYS[8], now, now .. ':' .. admitted)
end
return {1, admitted, s.interval, 0}
