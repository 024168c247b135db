-- Joins the waiting line once per user (FIFO by arrival); a user already active stays active.
-- KEYS: waiting zset, active zset, arrival counter.  ARGV: user id.
-- Returns {state, rank}: state 1 = active, 0 = waiting (rank is 0-based).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local user = ARGV[1]

local expires = redis.call('ZSCORE', KEYS[2], user)
if expires then
  if tonumber(expires) > now then return {1, 0} end
  redis.call('ZREM', KEYS[2], user)
end

local rank = redis.call('ZRANK', KEYS[1], user)
if rank then return {0, rank} end

-- The arrival counter, not the clock, orders the line: two hosts' clocks cannot reorder it.
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), user)
return {0, redis.call('ZRANK', KEYS[1], user)}
