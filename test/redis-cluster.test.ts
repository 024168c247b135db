import t, { type Test } from 'tap'
import { Cluster } from 'ioredis'
import { buildTestApp, listen, type TestContext } from './helpers/app.js'
import { OPEN_QUEUE, activeToken, activeTokens } from './helpers/queue.js'
import { assertInvariants } from './helpers/invariants.js'
import { bearer, send } from './helpers/http.js'
import { range } from './helpers/lists.js'
import { SeatPool, Traffic, buyersInBackground } from './helpers/traffic.js'
import { waitFor } from './helpers/wait.js'
import { RedisCluster, queueLines, queueViolations } from './helpers/redis-cluster.js'

// Three masters with a replica each; a master silent for 1 s is failed over.
const cluster = await RedisCluster.start({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 })
t.teardown(() => cluster.stop())

const onCluster = (t: Test, overrides: Record<string, string | number> = {}) =>
  buildTestApp(t, { ...OPEN_QUEUE, ...overrides, REDIS_CLUSTER_NODES: cluster.seeds })

/** The first queue line's waiting key, once a join has created it. */
async function queueKey({ app, config }: TestContext): Promise<string> {
  // An empty list is no answer yet: waited for until the first join has made a line.
  const line = await waitFor('a queue line in Redis', async () => (await queueLines(app.redis, config.REDIS_KEY_PREFIX))[0])
  return line.waiting
}

t.test('the booking flow runs on a Redis Cluster: join, admitted, seats, hold, pay', async (t) => {
  const context = await onCluster(t, { SEED_POINTS: 120_000, SEAT_PRICE: 50_000 })
  const { app, db } = context
  t.ok(app.redis instanceof Cluster, 'REDIS_CLUSTER_NODES wins over REDIS_URL')
  const base = await listen(app)
  const userId = 7

  const token = await activeToken(base, userId)
  const key = await queueKey(context)
  const master = await cluster.masterOf(key)
  t.comment(`queue key ${key}: slot ${master.slot} on the master at 127.0.0.1:${master.port}`)

  const days = await send(base, 'GET', '/concert/reservation/days/1', { headers: bearer(token) })
  t.equal(days.status, 200)
  const concertDetailId: number = days.body[0].concertDetailId
  const seats = await send(base, 'GET', `/concert/seats/${concertDetailId}`, { headers: bearer(token) })
  t.equal(seats.status, 200)
  const seat = { userId, concertDetailId, seatNo: 3 }
  const hold = await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })
  t.equal(hold.status, 200)
  const paid = await send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'cluster-pay-7' } })
  t.equal(paid.status, 200)
  t.match(paid.body, { reservationId: hold.body.reservationId, amount: 50_000, point: 70_000 })
  t.equal((await send(base, 'GET', '/health')).status, 200, 'health pings every master')
  await assertInvariants(t, db)
})

t.test('100 users race for one seat on a Redis Cluster: exactly one wins', async (t) => {
  const { app, db } = await onCluster(t)
  const base = await listen(app)
  const users = range(1, 100)
  const tokens = await activeTokens(base, users, { timeoutMs: 30_000 })
  const detail = await db.selectFrom('concert_details').select('id').where('concert_id', '=', 1).orderBy('id').executeTakeFirstOrThrow()
  const replies = await Promise.all(
    users.map((userId, i) =>
      send(base, 'PATCH', '/concert/seat', { body: { userId, concertDetailId: detail.id, seatNo: 1 }, headers: bearer(tokens[i]!) }),
    ),
  )
  const statuses = replies.map((reply) => reply.status)
  t.equal(statuses.filter((s) => s === 200).length, 1, 'one hold')
  t.equal(statuses.filter((s) => s === 409).length, 99, 'everyone else is told the seat is taken')
  await assertInvariants(t, db)
})

/**
 * 40 buyers through a line of 10 active slots, with `fault` done to the cluster once a few have
 * paid. Every buyer must finish; a 503 (or a lost answer, which the client retries) is the worst
 * allowed while the fault lasts; the queue's invariants are sampled throughout.
 */
async function buyThrough(t: Test, fault: (context: TestContext) => Promise<void>) {
  const context = await onCluster(t, { MAX_ACTIVE: 10, ADMIT_BATCH: 5, ADMIT_INTERVAL_MS: 100, SEED_USERS: 200 })
  const { app, db, config } = context
  const base = await listen(app)
  const details = (await db.selectFrom('concert_details').select('id').where('concert_id', '=', 1).execute()).map((d) => d.id)
  const seats = new SeatPool(details, config.SEATS_PER_DETAIL)
  const traffic = new Traffic()
  const deadline = Date.now() + 120_000

  const violations: string[] = []
  let samples = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      try {
        violations.push(...(await queueViolations(app.redis, config.REDIS_KEY_PREFIX, config.MAX_ACTIVE)))
        samples++
      } catch {
        // A reading during the fault itself may fail; the next one counts.
      }
      await new Promise((done) => setTimeout(done, 25))
    }
  })()

  const buyers = buyersInBackground(40, { baseUrl: base, seats, traffic, deadline })
  await waitFor('a few payments before the fault', () => buyers.paid() >= 5, { timeoutMs: 60_000 })
  const faultAt = Date.now()
  await fault(context)
  const faultDone = Date.now()
  const purchases = await buyers.purchases
  sampling = false
  await sampler

  const during = traffic.outcomes.filter((o) => o.startedAt >= faultAt && o.startedAt <= faultDone).length
  t.ok(during > 0, `${during} calls were sent while the fault lasted`)
  const failed = traffic.outcomes.filter((o) => o.status === 503 || o.error !== undefined)
  const lastFailure = Math.max(faultAt, ...failed.map((o) => o.startedAt + o.ms))
  t.comment(
    `fault took ${faultDone - faultAt} ms; ${traffic.outcomes.length} calls: ${traffic.summary()}; ` +
      `last 503 or lost answer ${lastFailure - faultAt} ms after the fault began`,
  )
  t.same(traffic.serverErrors(), [], 'no 5xx but 503')
  t.same(traffic.badShapes(), [], 'every error in the one shape')
  t.equal(purchases.length, 40, 'every buyer got a seat, without a restart')
  t.equal(new Set(purchases.map((p) => `${p.concertDetailId}/${p.seatNo}`)).size, 40, 'no seat sold twice')
  t.ok(samples > 0, `the queue was sampled (${samples} readings)`)
  t.same(violations, [], 'one entry per user, never above MAX_ACTIVE')
  t.same(await queueViolations(app.redis, config.REDIS_KEY_PREFIX, config.MAX_ACTIVE), [])
  await assertInvariants(t, db)
  const health = await send(base, 'GET', '/health')
  t.equal(health.status, 200, 'healthy again')
}

t.test("the queue's slot moved to another master under traffic: at worst 503, then recovery", async (t) => {
  await buyThrough(t, async (context) => {
    const from = await cluster.masterOf(await queueKey(context))
    const to = (await cluster.masters()).find((m) => m.port !== from.port)!
    await cluster.moveSlot(from.slot, to)
    const now = await cluster.masterOf(await queueKey(context))
    t.equal(now.port, to.port, `slot ${from.slot} moved from 127.0.0.1:${from.port} to 127.0.0.1:${to.port}`)
  })
})

t.test("the master holding the queue killed under traffic: a replica takes over, at worst 503, then recovery", async (t) => {
  await buyThrough(t, async (context) => {
    const before = await cluster.masterOf(await queueKey(context))
    await cluster.killMaster(before.port)
    const after = await cluster.masterOf(await queueKey(context))
    t.not(after.port, before.port, `slot ${before.slot} served by the promoted replica 127.0.0.1:${after.port}`)
  })
})
