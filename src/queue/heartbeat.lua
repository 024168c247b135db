-- GET /concert/wait: where a user stands in one concert's queue; a waiter's call is the
-- heartbeat that keeps the place (WAITING_TTL_MS).
-- KEYS: concert hash, waiting zset, pre-queue zset, seen zset, active zset, admitted zset.
-- ARGV: user id, default max active, default batch, default interval ms, waiting TTL ms.
-- Returns {state, rank, batch, interval, opensAt} (see common.lua); -1 = in neither, or unknown concert.
local now = now_ms()
local s = settings(KEYS[1], { maxActive = ARGV[2], batch = ARGV[3], interval = ARGV[4] })
if not s then return {-1, 0, 0, 0, 0} end
return answer(standing(ARGV[1], now, tonumber(ARGV[5]), true, KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]), s)
