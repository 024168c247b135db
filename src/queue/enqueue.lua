-- Joins one concert's queue once per user. Before the sale opens the user enters the pre-queue
-- (shuffled at the opening); after it, the back of the line (FIFO). A user already active stays
-- active; one already queued keeps the place, and the join counts as a heartbeat.
-- KEYS: concert hash, waiting zset, pre-queue zset, seen zset, active zset, admitted zset, arrival counter.
-- ARGV: user id, default max active, default batch, default interval ms, waiting TTL ms.
-- Returns {state, rank, batch, interval, opensAt} (see common.lua); state -2 = unknown concert.
local now = now_ms()
local user = ARGV[1]
local s = settings(KEYS[1], { maxActive = ARGV[2], batch = ARGV[3], interval = ARGV[4] })
if not s then return {-2, 0, 0, 0, 0} end

local place = standing(user, now, tonumber(ARGV[5]), true, KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
if place[1] ~= -1 then return answer(place, s) end

-- The arrival counter, not the clock, orders the line: two hosts' clocks cannot reorder it.
local arrival = redis.call('INCR', KEYS[7])
redis.call('ZADD', KEYS[4], now, user)
if not s.opened and now < s.opensAt then
  redis.call('ZADD', KEYS[3], arrival, user)
  return answer({2, 0}, s)
end
redis.call('ZADD', KEYS[2], arrival, user)
return answer({0, redis.call('ZRANK', KEYS[2], user)}, s)
