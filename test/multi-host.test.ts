import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { Redis } from 'ioredis'
import { concertQueueKeys } from '../src/queue/queue.js'
import { prepareTestData, testConfig } from './helpers/app.js'
import { startServer, type ServerProcess } from './helpers/server-process.js'
import { assertInvariants } from './helpers/invariants.js'
import { range } from './helpers/lists.js'
import { bearer, send, type Reply } from './helpers/http.js'
import { joinQueue } from './helpers/queue.js'

// Two independent server processes (each its own cluster primary, port and workers) on one
// MySQL database and one Redis key prefix: two app hosts behind a load balancer, on one machine.

const USERS = 150
const MAX_ACTIVE = 60
const ADMIT_BATCH = 8
const ADMIT_INTERVAL_MS = 100

interface Sample {
  /** Redis time (ms) of the last admission tick. */
  tick: number
  admissions: number
  active: number[]
  waiting: number
}

t.test('two hosts on one MySQL and one Redis: one winner per seat, admission FIFO, never over MAX_ACTIVE, one admitter per tick', { timeout: 120_000 }, async (t) => {
  const config = testConfig({
    WORKERS: 2,
    SEED_USERS: USERS,
    SEED_POINTS: 50_000,
    SEAT_PRICE: 50_000,
    MAX_ACTIVE,
    ADMIT_BATCH,
    ADMIT_INTERVAL_MS,
    ACTIVE_TTL_MS: 600_000,
    RATE_LIMIT_WAIT_PER_MIN: 0,
    RATE_LIMIT_PAY_PER_MIN: 0,
    // The admitter logs what it admitted at debug: that tells which worker of which host won a tick.
    LOG_LEVEL: 'debug',
  })
  const db = await prepareTestData(t, config)
  const hosts = (await Promise.all([startServer(t, config), startServer(t, config)])) as [ServerProcess, ServerProcess]
  const hostOf = (userId: number) => hosts[userId % 2]!
  const otherHostOf = (userId: number) => hosts[(userId + 1) % 2]!
  t.comment(`host A ${hosts[0].baseUrl} workers ${hosts[0].workerPids.join(', ')}; host B ${hosts[1].baseUrl} workers ${hosts[1].workerPids.join(', ')}`)

  const redis = new Redis(config.REDIS_URL)
  t.teardown(() => redis.disconnect())
  const key = concertQueueKeys(config.REDIS_KEY_PREFIX, 1)

  // Everything read in one MULTI, so one sample is one instant of the queue.
  const samples: Sample[] = []
  const takeSample = async (): Promise<Sample> => {
    const replies = await redis.multi().hget(key.concert, 'lastTick').get(key.admissions).zrange(key.active, 0, -1).zcard(key.waiting).exec()
    const [tick, admissions, active, waiting] = replies!.map(([error, value]) => {
      if (error) throw error
      return value
    }) as [string | null, string | null, string[], number]
    const sample = { tick: Number(tick ?? -1), admissions: Number(admissions ?? 0), active: active.map(Number), waiting }
    samples.push(sample)
    return sample
  }
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      await takeSample()
      await delay(2)
    }
  })()
  t.teardown(() => {
    sampling = false
  })

  // Users 1..150 join one at a time, odd ones on host B, even ones on host A: that order is the line.
  const tokens = new Map<number, string>()
  for (const userId of range(1, USERS)) {
    const joined = await joinQueue(hostOf(userId).baseUrl, userId)
    if (joined.status !== 200) throw new Error(`join ${userId}: ${joined.status} ${JSON.stringify(joined.body)}`)
    tokens.set(userId, joined.body.token)
  }
  const auth = (userId: number) => bearer(tokens.get(userId)!)

  const deadline = Date.now() + 30_000
  while ((samples.at(-1)?.active.length ?? 0) < MAX_ACTIVE && Date.now() < deadline) await delay(10)
  const racers = (await takeSample()).active.sort((a, b) => a - b)
  t.same(racers, range(1, MAX_ACTIVE), `the first ${MAX_ACTIVE} in line are the ones admitted`)

  // ---- the race: every active user holds seat 1/1 at once, half through each host ----
  const hold = async (userId: number): Promise<Reply> => {
    for (;;) {
      const reply = await send(otherHostOf(userId).baseUrl, 'PATCH', '/concert/seat', { body: { userId, concertDetailId: 1, seatNo: 1 }, headers: auth(userId) })
      if (reply.status !== 503) return reply
      await delay(20)
    }
  }
  const holds = await Promise.all(racers.map(hold))
  const winners = racers.filter((_, i) => holds[i]!.status === 200)
  t.equal(winners.length, 1, `${racers.length} users on two hosts hold one seat: exactly one wins`)
  t.same(
    holds.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body.code}`),
    Array(racers.length - 1).fill('409 SEAT_TAKEN'),
    'everyone else is told the seat is taken',
  )
  const winner = winners[0]!
  const left = new Set<number>([winner])
  // The winner pays on both hosts at once, with two different keys: one payment only.
  const pays = await Promise.all(
    hosts.map((host, i) =>
      send(host.baseUrl, 'POST', '/concert/reservation/days', {
        body: { userId: winner, concertDetailId: 1, seatNo: 1 },
        headers: { ...auth(winner), 'idempotency-key': `pay-on-host-${i}` },
      }),
    ),
  )
  t.equal(pays.filter((r) => r.status === 200).length, 1, 'paying on both hosts at once: one payment succeeds')
  t.match(pays.find((r) => r.status !== 200)?.body, { code: /^(HOLD_NOT_FOUND|NOT_IN_QUEUE)$/ }, 'the other is refused')
  const seat = await db.selectFrom('seats').selectAll().where('concert_detail_id', '=', 1).where('seat_no', '=', 1).executeTakeFirstOrThrow()
  t.match(seat, { status: 'SOLD', user_id: winner })

  // ---- the rest of the line: admitted users leave through the other host, the next get in ----
  while (left.size < USERS && Date.now() < deadline + 30_000) {
    const { active } = await takeSample()
    const leaving = active.filter((userId) => !left.has(userId))
    for (const userId of leaving) left.add(userId)
    await Promise.all(leaving.map((userId) => send(otherHostOf(userId).baseUrl, 'DELETE', '/concert/wait', { headers: auth(userId) })))
    await delay(5)
  }
  sampling = false
  await sampler
  t.equal(left.size, USERS, 'everyone was admitted in the end')

  // ---- what the samples show ----
  const overfull = samples.filter((s) => s.active.length > MAX_ACTIVE)
  t.same(overfull, [], `never more than MAX_ACTIVE=${MAX_ACTIVE} active across both hosts (${samples.length} samples, at most ${Math.max(...samples.map((s) => s.active.length))})`)

  // FIFO: at every instant, everyone admitted so far (still active, or gone after a sample saw
  // them: users leave only once seen) is exactly the head of the line, as long as the counter says.
  const seen = new Set<number>()
  const notFifo: string[] = []
  for (const sample of samples) {
    for (const userId of sample.active) seen.add(userId)
    if (seen.size !== sample.admissions || !range(1, sample.admissions).every((userId) => seen.has(userId))) {
      notFifo.push(`counter ${sample.admissions}, admitted ${[...seen].sort((a, b) => a - b).join(',')}`)
    }
  }
  t.same(notFifo.slice(0, 5), [], `admitted users are always exactly the head of the line, in arrival order (${samples.length} samples)`)

  // One admitter per tick: ticks are at least ADMIT_INTERVAL_MS apart, so between two samples the
  // counter grows by at most ADMIT_BATCH per interval that passed between their last ticks, and
  // not at all when no new tick ran: a tick is admitted by one call only.
  let sameSlotPairs = 0
  let adjacentSlotPairs = 0
  let maxPerSlot = 0
  const violations: string[] = []
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1]!, samples[i]!]
    const slots = b.tick === a.tick ? 0 : Math.floor((b.tick - a.tick) / ADMIT_INTERVAL_MS)
    const admitted = b.admissions - a.admissions
    if (slots < 0 || admitted < 0) violations.push(`went back: ${JSON.stringify({ a, b })}`)
    if (slots === 0) {
      sameSlotPairs++
      if (admitted !== 0) violations.push(`tick ${a.tick} admitted twice (${admitted} more)`)
    }
    if (slots === 1) {
      adjacentSlotPairs++
      maxPerSlot = Math.max(maxPerSlot, admitted)
    }
    if (admitted > ADMIT_BATCH * Math.max(slots, 0)) violations.push(`${admitted} admitted over ${slots} interval(s) ${a.tick}..${b.tick}`)
  }
  t.same(violations, [], `no slot admits more than ADMIT_BATCH=${ADMIT_BATCH} (${adjacentSlotPairs} slots seen one by one, at most ${maxPerSlot} in one; ${sameSlotPairs} sample pairs inside one slot, none admitting)`)

  // Every worker of both hosts ticks twice a slot; the ones that won say so at debug.
  const tickWins = hosts.flatMap((host, h) =>
    host.logs.filter((line) => line.msg === 'admitted from the waiting queue').map((line) => ({ host: h === 0 ? 'A' : 'B', pid: line.pid, admitted: Number(line.admitted) })),
  )
  const byWorker = new Map<string, number>()
  for (const win of tickWins) byWorker.set(`host ${win.host} pid ${win.pid}`, (byWorker.get(`host ${win.host} pid ${win.pid}`) ?? 0) + 1)
  t.comment(`admitting ticks won by: ${[...byWorker].map(([worker, n]) => `${worker}: ${n}`).join('; ')}`)
  t.equal(tickWins.reduce((sum, win) => sum + win.admitted, 0), USERS, 'the winning ticks of all workers on both hosts admitted each user once in total')
  t.ok(tickWins.every((win) => win.admitted <= ADMIT_BATCH), 'no winning tick admitted more than ADMIT_BATCH')
  const final = await takeSample()
  t.same({ admissions: final.admissions, active: final.active, waiting: final.waiting }, { admissions: USERS, active: [], waiting: 0 }, 'the queue is empty; no user was admitted twice')

  t.equal((await db.selectFrom('payments').select('id').execute()).length, 1, 'one payment in the database')
  await assertInvariants(t, db)
  for (const host of hosts) t.same(await host.stop(), { code: 0, signal: null }, 'each host shuts down cleanly')
})
