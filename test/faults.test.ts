import { setTimeout as delay } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { Kysely } from 'kysely'
import { createConnection } from 'mysql2/promise'
import type { Database } from '../src/db/schema.js'
import { prepareTestData, testConfig } from './helpers/app.js'
import { OPEN_QUEUE, activeToken, joinQueue, joinRequest } from './helpers/queue.js'
import { isAlive, startServer, type ServerProcess } from './helpers/server-process.js'
import { assertInvariants, observerDb } from './helpers/invariants.js'
import { appConnectionKiller, mysqlTarget, mysqlUrlVia, startPrivateRedis, startTcpProxy } from './helpers/chaos.js'
import { SeatPool, Traffic, buySeat, type Outcome, type Purchase } from './helpers/traffic.js'
import { isErrorResponse } from './helpers/error-shape.js'
import { eachConcurrently, range } from './helpers/lists.js'
import { bearer, send, type Reply } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

// Every test here runs real cluster processes under concurrent traffic, injects one fault, and
// ends with the README's invariants checked in the database. Clients retry a lost answer or a
// 503 as a real one would, so the tests can also demand that every booking and every charge
// ends up applied exactly once, however the fault cut it.

// Five clusters start and break one after the other: more than the suite's default file timeout
// on a busy 2-core machine. Each test has its own bound below.
t.setTimeout(300_000)

// The clients retry hard on purpose; per-user rate limits would turn that into 429s.
const NO_RATE_LIMITS = { RATE_LIMIT_WAIT_PER_MIN: 0, RATE_LIMIT_PAY_PER_MIN: 0 }
// Each user can afford exactly one seat: a payment applied twice would have to go negative.
const ONE_SEAT_EACH = { SEED_POINTS: 50_000, SEAT_PRICE: 50_000 }
const CHARGE = 100

/** Every purchase a client was told about is in the database with its reservation, and no other. */
async function assertPurchasesStored(t: Test, db: Kysely<Database>, purchases: Purchase[]) {
  const rows = await db.selectFrom('payments').select(['id', 'reservation_id', 'user_id']).execute()
  const byId = new Map(rows.map((row) => [row.id, row]))
  const missing = purchases.filter((p) => byId.get(p.paymentId)?.reservation_id !== p.reservationId || byId.get(p.paymentId)?.user_id !== p.userId)
  t.same(missing, [], `every answered payment is stored (${purchases.length})`)
  t.equal(rows.length, purchases.length, 'and there is no other payment')
}

/**
 * Clients charging points with an Idempotency-Key each, retrying a lost answer or a 503 with
 * the same key, until `stop()`; `charged` says how much each user was told it got.
 */
function startCharging(baseUrl: string, users: number[], traffic: Traffic) {
  const charged = new Map<number, number>(users.map((userId) => [userId, 0]))
  let running = true
  const clients = users.map(async (userId) => {
    for (let n = 1; running; n++) {
      let reply: Reply | undefined
      do {
        reply = await traffic.send(baseUrl, 'PATCH', '/point', {
          route: 'PATCH /point',
          body: { userId, charge: CHARGE },
          headers: { 'idempotency-key': `charge-${userId}-${n}` },
          timeoutMs: 5000,
        })
        if (reply?.status === 200) charged.set(userId, charged.get(userId)! + CHARGE)
        else if (reply === undefined || reply.status === 503) await delay(50)
        else throw new Error(`charging user ${userId}: unexpected ${reply.status} ${JSON.stringify(reply.body)}`)
      } while (reply?.status !== 200)
    }
  })
  return {
    charged,
    stop: async () => {
      running = false
      await Promise.all(clients)
    },
  }
}

/** Each charged user's balance is its start, plus exactly the charges it was answered, minus a seat if it bought one. */
async function assertChargesExact(t: Test, db: Kysely<Database>, charged: Map<number, number>, buyers: Set<number>, start: number, price: number) {
  const rows = await db.selectFrom('users').select(['id', 'point']).where('id', 'in', [...charged.keys()]).execute()
  const wrong = rows.filter((row) => Number(row.point) !== start + charged.get(row.id)! - (buyers.has(row.id) ? price : 0))
  const total = [...charged.values()].reduce((sum, n) => sum + n, 0)
  t.same(wrong, [], `every charge applied exactly once (${total / CHARGE} charges)`)
}

/** Polls `probe` until it has succeeded `times` in a row; answers the ms from `since` to the first success and to the last. */
async function recovery(since: number, probe: () => Promise<boolean>, times = 10, timeoutMs = 20_000) {
  let first: number | undefined
  for (let streak = 0; streak < times; ) {
    if (Date.now() - since > timeoutMs) throw new Error(`no recovery within ${timeoutMs} ms`)
    if (await probe().catch(() => false)) {
      first ??= Date.now() - since
      streak++
    } else {
      streak = 0
      await delay(10)
    }
  }
  return { first: first!, steady: Date.now() - since }
}

// How long Redis or MySQL stays away in the outage tests.
const OUTAGE_MS = 3000

/**
 * The calls that waited for the dependency to come back instead of failing at once: started
 * before the outage's midpoint (those in flight at the cut too) and still unanswered when the
 * restore began. Generous on purpose, so a busy machine cannot fake a hang; a real wait shows.
 */
const waitedForRestore = (outcomes: Outcome[], downAt: number, restoringAt: number) =>
  outcomes.filter((o) => o.startedAt < downAt + OUTAGE_MS / 2 && o.startedAt + o.ms >= restoringAt)

/** The clients' traffic through an outage: no call waited for `dependency`, no 5xx but 503, every refusal in the error shape. */
function assertOutageServed(t: Test, traffic: Traffic, dependency: string, downAt: number, restoringAt: number) {
  const duringOutage = traffic.outcomes.filter((o) => o.startedAt >= downAt && o.startedAt < restoringAt)
  t.comment(`client traffic during the outage: ${traffic.summary(duringOutage)}; slowest 503 ${Math.max(...duringOutage.filter((o) => o.status === 503).map((o) => o.ms))} ms`)
  t.same(waitedForRestore(traffic.outcomes, downAt, restoringAt), [], `no client call waited for ${dependency} to come back`)
  t.same(traffic.serverErrors(), [], 'no 5xx but a clean 503')
  t.same(traffic.badShapes(), [], 'every refusal has the error shape')
}

/** Holds a seat before the fault, retrying a 503 as a client would (holds can lose a deadlock under contention). */
async function holdSeat(baseUrl: string, token: string, seat: { userId: number; concertDetailId: number; seatNo: number }) {
  for (let attempt = 1; ; attempt++) {
    const held = await send(baseUrl, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })
    if (held.status === 200) return
    if (held.status !== 503 || attempt === 5) throw new Error(`hold for user ${seat.userId}: ${held.status} ${JSON.stringify(held.body)}`)
    await delay(50)
  }
}

const noWorkerDied = (t: Test, server: ServerProcess) =>
  t.same(
    server.logs.filter((line) => line.msg === 'worker died; replacing it').map((line) => line.raw),
    [],
    'no worker crashed',
  )

t.test('a worker SIGKILLed under booking traffic is replaced; no payment is lost or half-written', { timeout: 120_000 }, async (t) => {
  const concurrency = 30
  const firstWave = range(1, 120)
  const secondWave = range(121, 60)
  const config = testConfig({ ...OPEN_QUEUE, ...NO_RATE_LIMITS, ...ONE_SEAT_EACH, WORKERS: 2, SEED_USERS: 180 })
  const db = await prepareTestData(t, config)
  const server = await startServer(t, config)
  const traffic = new Traffic()
  const seats = new SeatPool([1, 2, 3, 4], 50)
  const purchases: Purchase[] = []
  const deadline = Date.now() + 100_000
  const buy = (userId: number) => buySeat({ baseUrl: server.baseUrl, userId, seats, traffic, deadline })
  const booking = eachConcurrently(firstWave, concurrency, async (userId) => purchases.push(await buy(userId)))

  await waitFor('a quarter of the first wave to pay', () => purchases.length >= firstWave.length / 4, { timeoutMs: 60_000, intervalMs: 5 })
  const [victim] = server.workerPids as [number]
  const paidAtKill = purchases.length
  const mark = server.logs.length
  const killedAt = Date.now()
  process.kill(victim, 'SIGKILL')
  const died = await server.waitForLog(/worker died; replacing it/, { after: mark })
  const listening = await server.waitForLog((line) => /Server listening at/.test(line.raw) && line.pid !== victim, { after: mark, timeoutMs: 40_000 })
  const replacedAt = Number(listening.time)
  t.match(died, { worker: victim, signal: 'SIGKILL' }, 'the primary saw the worker die')
  t.notOk(isAlive(victim), 'the killed worker is gone')
  t.comment(`worker killed with ${paidAtKill} of ${firstWave.length} paid; the primary noticed in ${Number(died.time) - killedAt} ms; replacement listening after ${replacedAt - killedAt} ms`)

  await booking
  const whileReplacing = traffic.outcomes.filter((o) => o.startedAt >= killedAt && o.startedAt < replacedAt)
  t.ok(whileReplacing.some((o) => o.status === 200), `the surviving worker kept answering meanwhile (${traffic.summary(whileReplacing)})`)
  // With both workers back, a second wave of buyers books through the repaired cluster.
  await eachConcurrently(secondWave, concurrency, async (userId) => purchases.push(await buy(userId)))
  t.equal(purchases.length, firstWave.length + secondWave.length, 'every buyer ended up with a paid seat')

  const lostAnswers = traffic.outcomes.filter((o) => o.error)
  t.ok(lostAnswers.length <= concurrency, `only requests in flight at the kill lost their answer (${lostAnswers.length})`)
  t.ok(lostAnswers.every((o) => o.startedAt <= Number(died.time)), 'no request failed once the primary knew the worker was gone')
  t.same(traffic.serverErrors(), [], 'no 5xx but a clean 503')
  t.same(traffic.badShapes(), [], 'every refusal has the error shape')
  t.comment(`${traffic.outcomes.length} requests from ${concurrency} concurrent clients: ${traffic.summary()}`)
  const holds = traffic.outcomes.filter((o) => o.route === 'PATCH /concert/seat')
  t.comment(`PATCH /concert/seat: ${traffic.summary(holds)}`)
  t.comment(`${purchases.filter((p) => p.retried).length} payments lost their first answer; the retry with the same key got the one payment`)

  await assertPurchasesStored(t, db, purchases)
  await assertInvariants(t, db)
  t.same(await server.stop(), { code: 0, signal: null }, 'the server still shuts down cleanly')
})

t.test('SIGTERM under concurrent payments: in-flight payments finish, new ones are turned away, exit 0', { timeout: 60_000 }, async (t) => {
  const inFlight = range(1, 24)
  const late = range(25, 12)
  // debug: each worker logs every request it receives, so the test sees where the payments are.
  // round-robin: the primary deals the payers' connections to both workers in turn. With each
  // worker accepting for itself (the default) an idle machine can let one worker take all 24, and
  // the test needs payments in flight on both.
  const config = testConfig({ ...OPEN_QUEUE, ...NO_RATE_LIMITS, ...ONE_SEAT_EACH, WORKERS: 2, SEED_USERS: 36, SHUTDOWN_TIMEOUT_MS: 8000, LOG_LEVEL: 'debug', CLUSTER_SCHEDULING: 'round-robin' })
  const db = await prepareTestData(t, config)
  const server = await startServer(t, config)
  const seat = (userId: number) => ({ userId, concertDetailId: 1 + (userId % 4), seatNo: userId })
  const tokens = new Map<number, string>()
  await eachConcurrently([...inFlight, ...late], 10, async (userId) => {
    const token = await activeToken(server.baseUrl, userId)
    tokens.set(userId, token)
    await holdSeat(server.baseUrl, token, seat(userId))
  })
  const pay = (userId: number) =>
    send(server.baseUrl, 'POST', '/concert/reservation/days', {
      body: seat(userId),
      headers: { ...bearer(tokens.get(userId)!), 'idempotency-key': `pay-${userId}` },
      // Longer than the waits below: a precondition that never comes fails as that wait, by name,
      // rather than as a payment timing out unawaited.
      timeoutMs: 50_000,
    })

  // Holding the payers' balance rows keeps their payments in flight, inside the debit, for as
  // long as the test needs: the deterministic version of "a payment is running at SIGTERM".
  const locker = await createConnection({ uri: config.MYSQL_URL })
  t.teardown(() => locker.destroy())
  await locker.query('START TRANSACTION')
  await locker.query('SELECT id FROM users WHERE id BETWEEN ? AND ? FOR UPDATE', [inFlight[0], inFlight.at(-1)])
  let answered = 0
  const paymentsFrom = server.logs.length
  const payments = inFlight.map((userId) => pay(userId).finally(() => answered++))
  // What the test needs before SIGTERM, however the connections were spread and however slow
  // the machine: every payment received by a worker (so none is still on its way to be turned
  // away), payments in flight on every worker, and the balance lock holding at least one.
  const paymentsReceived = () => {
    const pids = server.logs
      .slice(paymentsFrom)
      .filter((line) => line.msg === 'incoming request' && (line.req as { url?: string } | undefined)?.url === '/concert/reservation/days')
      .map((line) => line.pid)
    return { count: pids.length, workers: new Set(pids) }
  }
  // The app's connections to this database that sit in the debit (PROCESSLIST is live, where
  // INNODB_TRX is a cache that frequent polling keeps stale).
  const blockedInDebit = async () => {
    const [rows] = await locker.query(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE 'update%users%set%point%'",
    )
    return Number((rows as { n: number }[])[0]!.n)
  }
  await waitFor('every payment to be received, by both workers', () => {
    const { count, workers } = paymentsReceived()
    return count === inFlight.length && server.workerPids.every((pid) => workers.has(pid))
  }, { timeoutMs: 30_000 })
  await waitFor('a payment blocked inside its debit', async () => (await blockedInDebit()) > 0, { timeoutMs: 30_000 })
  t.equal(answered, 0, `all ${inFlight.length} payments are in flight, on both workers`)

  const mark = server.logs.length
  const signalledAt = Date.now()
  process.kill(server.pid, 'SIGTERM')
  for (const pid of server.workerPids) await server.waitForLog((line) => line.msg === 'worker draining' && line.pid === pid, { after: mark })
  await delay(100)

  const refusals = await Promise.all(late.map((userId) => pay(userId).then((reply) => reply, (error: NodeJS.ErrnoException) => error.code ?? error.message)))
  const turnedAway = refusals.map((r) => (typeof r === 'string' ? r : `${r.status}${isErrorResponse(r.status, r.body) ? '' : ' (no error shape)'}`))
  t.ok(
    turnedAway.every((r) => r === '503' || r === 'ECONNREFUSED' || r === 'ECONNRESET'),
    `${late.length} concurrent new payments while draining are refused or answered 503 (${[...new Set(turnedAway)].join(', ')})`,
  )
  t.equal(answered, 0, 'the payments in flight are still running')

  await locker.query('COMMIT')
  const results = await Promise.all(payments)
  t.same([...new Set(results.map((r) => r.status))], [200], `all ${inFlight.length} in-flight payments finished with 200`)
  const exit = await server.waitForExit(config.SHUTDOWN_TIMEOUT_MS + 3000)
  t.same(exit, { code: 0, signal: null }, 'the primary exits 0')
  t.comment(`drained and exited ${Date.now() - signalledAt} ms after SIGTERM`)
  t.notOk(server.logs.some((line) => line.msg === 'worker died; replacing it'), 'no worker was replaced while draining')

  const latePaid = await db.selectFrom('payments').select('user_id').where('user_id', 'in', late).execute()
  t.same(latePaid, [], 'no payment turned away was applied')
  const lateSeats = await db.selectFrom('seats').select('status').where('user_id', 'in', late).execute()
  t.same([...new Set(lateSeats.map((s) => s.status))], ['HELD'], 'their seats are still only held')
  t.equal((await db.selectFrom('payments').select('id').execute()).length, inFlight.length, 'one payment per in-flight payer')
  await assertInvariants(t, db)
})

t.test('Redis stopped and started again: queue calls fail at once with 503, then work again without an app restart', { timeout: 90_000 }, async (t) => {
  const buyers = range(1, 100)
  const prober = 101
  const redis = await startPrivateRedis(t)
  // The shared Redis stays in the config, for the test's own clean-up; the app gets the private one.
  const config = testConfig({ ...OPEN_QUEUE, ...NO_RATE_LIMITS, ...ONE_SEAT_EACH, WORKERS: 2, SEED_USERS: 101 })
  const db = await prepareTestData(t, config)
  const server = await startServer(t, config, { env: { REDIS_URL: redis.url } })
  const base = server.baseUrl
  const proberToken = await activeToken(base, prober)
  const auth = bearer(proberToken)
  const seatBody = { userId: prober, concertDetailId: 4, seatNo: 50 }

  const traffic = new Traffic()
  const seats = new SeatPool([1, 2, 3], 50)
  const purchases: Purchase[] = []
  const deadline = Date.now() + 70_000
  const booking = eachConcurrently(buyers, 25, async (userId) => {
    purchases.push(await buySeat({ baseUrl: base, userId, seats, traffic, deadline }))
  })
  await waitFor('a fifth of the buyers to pay', () => purchases.length >= buyers.length / 5, { timeoutMs: 60_000, intervalMs: 5 })

  await redis.kill()
  const downAt = Date.now()
  const queueCalls: [string, string, { body?: unknown; headers?: Record<string, string> }][] = [
    [joinRequest(prober).method, joinRequest(prober).path, joinRequest(prober).options],
    ['GET', '/concert/wait', { headers: auth }],
    ['DELETE', '/concert/wait', { headers: auth }],
    ['GET', '/concert/seats/1', { headers: auth }],
    ['GET', '/concert/reservation/days/1', { headers: auth }],
    ['PATCH', '/concert/seat', { body: seatBody, headers: auth }],
    ['POST', '/concert/reservation/days', { body: seatBody, headers: auth }],
  ]
  const probes = new Traffic()
  // Right after the kill, while the outage runs its course: two rounds over fresh connections reach both workers.
  const probing = (async () => {
    const health = await send(base, 'GET', '/health')
    const point = await send(base, 'GET', '/point/1')
    for (let round = 0; round < 2; round++) {
      for (const [method, path, options] of queueCalls) await probes.send(base, method, path, { ...options, timeoutMs: 10_000 })
      await delay(300)
    }
    return { health, point }
  })()
  await delay(OUTAGE_MS)
  const restoringAt = Date.now()
  await redis.start()
  const restartedAt = Date.now()
  const { health, point } = await probing

  t.same(
    [...new Set(probes.outcomes.map((o) => `${o.status} ${o.code}`))],
    ['503 DEPENDENCY_UNAVAILABLE'],
    'every queue and token call answers 503 DEPENDENCY_UNAVAILABLE',
  )
  t.same(probes.badShapes(), [], 'in the error shape')
  t.same(waitedForRestore(probes.outcomes, downAt, restoringAt), [], `at once, not when Redis is back (slowest ${Math.max(...probes.outcomes.map((o) => o.ms))} ms)`)
  t.equal(health.status, 503, '/health answers 503')
  t.ok(isErrorResponse(503, health.body), '/health in the error shape')
  t.match(health.body, { code: 'DEPENDENCY_UNAVAILABLE', message: /Redis/ }, '/health names Redis as the dependency that is down')
  t.equal(point.status, 200, 'calls that need only MySQL keep working')

  const back = await recovery(restartedAt, async () => (await joinQueue(base, prober, { timeoutMs: 3000 })).status === 200)
  t.comment(`Redis down for ${restartedAt - downAt} ms; after its restart the first queue call succeeded in ${back.first} ms, ten in a row by ${back.steady} ms`)
  t.ok(back.steady < 5000, 'the app reconnected on its own within seconds')
  t.equal((await send(base, 'GET', '/concert/wait', { headers: auth })).status, 200, 'the token from before the outage still works')

  await booking
  t.equal(purchases.length, buyers.length, 'every buyer ended up with a paid seat (re-joining the emptied queue)')
  assertOutageServed(t, traffic, 'Redis', downAt, restoringAt)
  noWorkerDied(t, server)
  await assertPurchasesStored(t, db, purchases)
  await assertInvariants(t, db)
})

t.test('MySQL connections killed under concurrent payments: 200 or 503, never 500, nothing half-paid', { timeout: 90_000 }, async (t) => {
  const payers = range(1, 80)
  const chargers = range(1, 10)
  const config = testConfig({ ...OPEN_QUEUE, ...NO_RATE_LIMITS, ...ONE_SEAT_EACH, WORKERS: 2, SEED_USERS: 80 })
  await prepareTestData(t, config)
  const db = observerDb(t, config)
  const server = await startServer(t, config)
  const base = server.baseUrl
  const killer = await appConnectionKiller(t, config)

  const seat = (userId: number) => ({ userId, concertDetailId: 1 + (userId % 4), seatNo: 1 + Math.floor(userId / 4) })
  const tokens = new Map<number, string>()
  await eachConcurrently(payers, 20, async (userId) => {
    const token = await activeToken(base, userId)
    tokens.set(userId, token)
    await holdSeat(base, token, seat(userId))
  })

  const traffic = new Traffic()
  const charging = startCharging(base, chargers, traffic)
  let paid = 0
  const paying = eachConcurrently(payers, 30, async (userId) => {
    for (;;) {
      const reply = await traffic.send(base, 'POST', '/concert/reservation/days', {
        route: 'POST /concert/reservation/days',
        body: seat(userId),
        headers: { ...bearer(tokens.get(userId)!), 'idempotency-key': `pay-${userId}` },
        timeoutMs: 5000,
      })
      if (reply?.status === 200) return paid++
      if (reply && reply.status !== 503) throw new Error(`paying for user ${userId}: unexpected ${reply.status} ${JSON.stringify(reply.body)}`)
      await delay(20)
    }
  })

  // Kill every connection of the app's pools, again and again, while the payments run.
  let kills = 0
  let rounds = 0
  const killingFrom = Date.now()
  while ((paid < payers.length || Date.now() - killingFrom < 1500) && Date.now() - killingFrom < 3000) {
    kills += await killer.killAll()
    rounds++
    await delay(100)
  }
  const lastKillAt = Date.now()
  const back = await recovery(lastKillAt, async () => (await send(base, 'GET', '/point/1', { timeoutMs: 3000 })).status === 200)
  await paying
  await charging.stop()
  t.comment(`${kills} connections killed in ${rounds} rounds over ${lastKillAt - killingFrom} ms; after the last, reads answered in ${back.first} ms, ten in a row by ${back.steady} ms`)

  t.equal(paid, payers.length, 'every payer ended up paid, retrying with its key')
  t.same(
    traffic.outcomes.filter((o) => o.status !== 200 && o.status !== 503),
    [],
    `every answer is 200 or 503 (${traffic.summary()})`,
  )
  t.ok(traffic.outcomes.some((o) => o.status === 503), 'the kills did hit requests')
  t.same(traffic.badShapes(), [], 'every 503 has the error shape')
  noWorkerDied(t, server)
  t.equal((await db.selectFrom('payments').select('id').execute()).length, payers.length, 'one payment per payer')
  await assertChargesExact(t, db, charging.charged, new Set(payers), ONE_SEAT_EACH.SEED_POINTS, ONE_SEAT_EACH.SEAT_PRICE)
  await assertInvariants(t, db)
})

t.test('MySQL unreachable for a while: 503 at once while it is out, recovery without an app restart', { timeout: 90_000 }, async (t) => {
  const buyers = range(1, 100)
  const chargers = range(101, 8)
  const prober = 109
  const config = testConfig({ ...OPEN_QUEUE, ...NO_RATE_LIMITS, ...ONE_SEAT_EACH, WORKERS: 2, SEED_USERS: 109 })
  const db = await prepareTestData(t, config)
  const proxy = await startTcpProxy(t, mysqlTarget(config))
  const server = await startServer(t, config, { env: { MYSQL_URL: mysqlUrlVia(config, proxy.port) } })
  const base = server.baseUrl

  const traffic = new Traffic()
  const seats = new SeatPool([1, 2, 3, 4], 50)
  const purchases: Purchase[] = []
  const deadline = Date.now() + 70_000
  const booking = eachConcurrently(buyers, 25, async (userId) => {
    purchases.push(await buySeat({ baseUrl: base, userId, seats, traffic, deadline }))
  })
  const charging = startCharging(base, chargers, traffic)
  await waitFor('a fifth of the buyers to pay', () => purchases.length >= buyers.length / 5, { timeoutMs: 60_000, intervalMs: 5 })

  const openAtCut = proxy.open()
  await proxy.cut()
  const cutAt = Date.now()
  const probes = new Traffic()
  const joins: number[] = []
  const probing = (async () => {
    const health = await send(base, 'GET', '/health')
    for (let round = 0; round < 2; round++) {
      await probes.send(base, 'GET', '/point/1', { timeoutMs: 10_000 })
      await probes.send(base, 'PATCH', '/point', { body: { userId: prober, charge: CHARGE }, timeoutMs: 10_000 })
      // The join asks Redis only, so it keeps working while MySQL is out.
      const join = joinRequest(prober, { timeoutMs: 10_000 })
      joins.push((await send(base, join.method, join.path, join.options)).status)
      await delay(300)
    }
    return health
  })()
  await delay(OUTAGE_MS)
  const restoringAt = Date.now()
  await proxy.restore()
  const health = await probing

  t.same([...new Set(probes.outcomes.map((o) => `${o.status} ${o.code}`))], ['503 DEPENDENCY_UNAVAILABLE'], 'calls that need MySQL answer 503 DEPENDENCY_UNAVAILABLE')
  t.same(probes.badShapes(), [], 'in the error shape')
  t.same(joins, [200, 200], 'joining the queue, which needs no MySQL, still works')
  t.same(waitedForRestore(probes.outcomes, cutAt, restoringAt), [], `at once, not when MySQL is back (slowest ${Math.max(...probes.outcomes.map((o) => o.ms))} ms)`)
  t.equal(health.status, 503, '/health answers 503')
  t.match(health.body, { code: 'DEPENDENCY_UNAVAILABLE', message: /MySQL/ }, '/health names MySQL as the dependency that is down')
  const back = await recovery(restoringAt, async () => (await send(base, 'GET', '/point/1', { timeoutMs: 3000 })).status === 200)
  t.comment(`MySQL unreachable for ${restoringAt - cutAt} ms (${openAtCut} connections reset); after it came back the first read succeeded in ${back.first} ms, ten in a row by ${back.steady} ms`)
  t.ok(back.steady < 5000, 'the pools reconnected on their own within seconds')

  await booking
  await charging.stop()
  t.equal(purchases.length, buyers.length, 'every buyer ended up with a paid seat')
  assertOutageServed(t, traffic, 'MySQL', cutAt, restoringAt)
  noWorkerDied(t, server)
  await assertPurchasesStored(t, db, purchases)
  await assertChargesExact(t, db, charging.charged, new Set(), ONE_SEAT_EACH.SEED_POINTS, ONE_SEAT_EACH.SEAT_PRICE)
  await assertInvariants(t, db)
})
