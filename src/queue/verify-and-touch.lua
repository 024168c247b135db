-- Lets an active user through and slides the slot's expiry; reports the rank otherwise.
-- KEYS: waiting zset, active zset.  ARGV: user id, active TTL in ms.
-- Returns {state, rank} as status.lua does.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local user = ARGV[1]

local expires = redis.call('ZSCORE', KEYS[2], user)
if expires then
  if tonumber(expires) > now then
    redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), user)
    return {1, 0}
  end
  redis.call('ZREM', KEYS[2], user)
end

local rank = redis.call('ZRANK', KEYS[1], user)
if rank then return {0, rank} end
return {-1, 0}
