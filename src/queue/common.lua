-- Shared by every queue script (prepended when the script is defined). Every key a script gets
-- is one concert's, under the concert's hash tag, so each script runs on one Redis Cluster slot.
-- The concert hash (KEYS[1] of every script but leave) holds saleOpensAt and openedAt (ms), the
-- operator's live overrides (paused, maxActive, admitBatch, admitIntervalMs) and lastTick.

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- The queue's settings in force: an operator's override, else the deployment's default.
-- Answers nil when the concert is unknown (its hash is missing).
local function settings(concert, defaults)
  local f = redis.call('HMGET', concert, 'saleOpensAt', 'openedAt', 'paused', 'maxActive', 'admitBatch', 'admitIntervalMs', 'lastTick')
  if not f[1] then return nil end
  return {
    opensAt = tonumber(f[1]),
    opened = f[2] ~= false,
    paused = f[3] == '1',
    maxActive = tonumber(f[4] or defaults.maxActive),
    batch = tonumber(f[5] or defaults.batch),
    interval = tonumber(f[6] or defaults.interval),
    lastTick = tonumber(f[7] or ''),
  }
end

-- A waiter (in line or in the pre-queue) whose last heartbeat is older than the TTL has lost the
-- place: taken out here, so it is never admitted. Answers true when the user was dropped.
local function drop_if_stale(user, now, waitingTtl, waiting, prequeue, seen)
  local last = redis.call('ZSCORE', seen, user)
  if last and tonumber(last) >= now - waitingTtl then return false end
  redis.call('ZREM', waiting, user)
  redis.call('ZREM', prequeue, user)
  redis.call('ZREM', seen, user)
  return true
end

-- Where a user stands, as {state, rank}: 1 active, 0 waiting (0-based rank), 2 pre-queue, -1 neither.
-- `heartbeat` marks a waiter as still there. An expired active slot is removed on the way.
local function standing(user, now, waitingTtl, heartbeat, waiting, prequeue, seen, active, admitted)
  local expires = redis.call('ZSCORE', active, user)
  if expires then
    if tonumber(expires) > now then return {1, 0} end
    redis.call('ZREM', active, user)
    redis.call('ZREM', admitted, user)
  end
  local rank = redis.call('ZRANK', waiting, user)
  local queued = rank or redis.call('ZSCORE', prequeue, user)
  if not queued then return {-1, 0} end
  if drop_if_stale(user, now, waitingTtl, waiting, prequeue, seen) then return {-1, 0} end
  if heartbeat then redis.call('ZADD', seen, now, user) end
  if rank then return {0, rank} end
  return {2, 0}
end

-- What every standing answer carries: {state, rank, batch, interval, opensAt}.
local function answer(place, s)
  return {place[1], place[2], s.batch, s.interval, s.opensAt}
end
