-- Takes a user out of the line and out of the active set (after paying, or giving up).
-- KEYS: waiting zset, active zset.  ARGV: user id.  Returns how many entries were removed.
return redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
