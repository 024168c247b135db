-- Where a user stands, without changing anything.
-- KEYS: waiting zset, active zset.  ARGV: user id.
-- Returns {state, rank}: 1 = active, 0 = waiting (0-based rank), -1 = in neither.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local user = ARGV[1]

local expires = redis.call('ZSCORE', KEYS[2], user)
if expires and tonumber(expires) > now then return {1, 0} end

local rank = redis.call('ZRANK', KEYS[1], user)
if rank then return {0, rank} end
return {-1, 0}
