-- Opens one concert's sale once: the pre-queue is put in a random order and placed, atomically,
-- ahead of everyone who joined after the opening (they stay FIFO behind it). The order comes
-- from a random seed sent by the caller (Node's crypto), not math.random, which Redis may seed
-- the same way every time: each user's place is the SHA-1 of seed and user id.
-- KEYS: concert hash, waiting zset, pre-queue zset.  ARGV: random seed.
-- Returns how many users the pre-queue held, or -1 when the sale was already open or not yet due.
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'saleOpensAt', 'openedAt')
if not f[1] or f[2] or now < tonumber(f[1]) then return -1 end

local drawn = {}
for _, user in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  drawn[#drawn + 1] = { redis.sha1hex(ARGV[1] .. ':' .. user), user }
end
table.sort(drawn, function(a, b) return a[1] < b[1] end)

-- Scores below the head of the line (arrival numbers start at 1), in drawn order.
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local first = math.min(tonumber(head[2] or 1), 1) - #drawn
for from = 1, #drawn, 500 do
  local args = {}
  for i = from, math.min(from + 499, #drawn) do
    args[#args + 1] = first + i - 1
    args[#args + 1] = drawn[i][2]
  end
  redis.call('ZADD', KEYS[2], unpack(args))
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'openedAt', now)
return #drawn
