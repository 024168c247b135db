-- Lets an active user through and slides the slot's expiry by ACTIVE_TTL_MS, never past
-- ACTIVE_MAX_MS after admission; reports where the user stands otherwise (no heartbeat).
-- KEYS: concert hash, waiting zset, pre-queue zset, seen zset, active zset, admitted zset.
-- ARGV: user id, default max active, default batch, default interval ms, waiting TTL ms,
--       active TTL ms, active max ms.
-- Returns {state, rank, batch, interval, opensAt} as heartbeat.lua does.
local now = now_ms()
local user = ARGV[1]
local s = settings(KEYS[1], { maxActive = ARGV[2], batch = ARGV[3], interval = ARGV[4] })
if not s then return {-1, 0, 0, 0, 0} end

local place = standing(user, now, tonumber(ARGV[5]), false, KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
if place[1] == 1 then
  local admittedAt = tonumber(redis.call('ZSCORE', KEYS[6], user) or now)
  local expires = math.min(now + tonumber(ARGV[6]), admittedAt + tonumber(ARGV[7]))
  if expires <= now then
    redis.call('ZREM', KEYS[5], user)
    redis.call('ZREM', KEYS[6], user)
    return answer({-1, 0}, s)
  end
  redis.call('ZADD', KEYS[5], 'XX', expires, user)
end
return answer(place, s)
