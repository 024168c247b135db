-- An operator's view of one concert's queue, read in one step.
-- KEYS: concert hash, waiting zset, pre-queue zset, active zset, admission log zset.
-- ARGV: default max active, default batch, default interval ms.
-- Returns {waiting, pre-queue, active, admitted in the last minute, paused, max active, batch,
-- interval, saleOpensAt, opened}, or an empty list when the concert is unknown.
local now = now_ms()
local s = settings(KEYS[1], { maxActive = ARGV[1], batch = ARGV[2], interval = ARGV[3] })
if not s then return {} end
local admitted = 0
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], now - 60000, '+inf')) do
  admitted = admitted + tonumber(string.match(entry, ':(%d+)$'))
end
return {
  redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]), redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf'), admitted,
  s.paused and 1 or 0, s.maxActive, s.batch, s.interval, s.opensAt, s.opened and 1 or 0,
}
