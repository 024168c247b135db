-- Takes a user out of one concert's line, pre-queue and active set (after paying, or giving up).
-- KEYS: waiting zset, pre-queue zset, seen zset, active zset, admitted zset.  ARGV: user id.
-- Returns how many entries were removed.
local removed = 0
for _, key in ipairs(KEYS) do removed = removed + redis.call('ZREM', key, ARGV[1]) end
return removed
