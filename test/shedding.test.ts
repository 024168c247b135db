import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { runLoad } from '../bench/lib/autocannon.js'
import { mayNeedMysql } from '../src/plugins/pressure.js'
import { QUEUE_PATH } from '../src/queue/schemas.js'
import { joinQueue } from './helpers/queue.js'
import { buildTestApp, listen, prepareTestData, testConfig } from './helpers/app.js'
import { isErrorResponse } from './helpers/error-shape.js'
import { bearer, send, type Reply } from './helpers/http.js'
import { identityToken } from './helpers/jwt.js'
import { ledgerMismatches } from './helpers/invariants.js'
import { startServer } from './helpers/server-process.js'
import { waitFor } from './helpers/wait.js'

// Every test runs with the shipped shedding settings: SHED_LOAD=true and nothing else overridden.
const SHEDDING = { SHED_LOAD: true }

/** Requests Fastify answered, as its per-request metric counts them (every route summed). */
async function requestsHandled(app: FastifyInstance): Promise<number> {
  const text = await app.metrics.registry.metrics()
  return [...text.matchAll(/^http_request_duration_seconds_count\{[^}]*\} (\d+)$/gm)].reduce((sum, [, n]) => sum + Number(n), 0)
}

/** Keeps the event loop busy in turns of `turnMs` until the returned function (or the teardown) stops it. */
function hogLoop(t: Test, turnMs: number): () => void {
  let hogging = true
  const hog = () => {
    if (!hogging) return
    const until = performance.now() + turnMs
    while (performance.now() < until);
    setImmediate(hog)
  }
  setImmediate(hog)
  const stop = () => void (hogging = false)
  t.teardown(stop)
  return stop
}

function assertShedAnswer(t: Test, body: any, retryAfter: unknown, retryAfterS: number): void {
  t.equal(body.code, 'SERVICE_OVERLOADED')
  t.ok(isErrorResponse(503, body), 'in the one error shape')
  t.equal(retryAfter, String(retryAfterS), 'with Retry-After')
}

t.test('a burst of 150 concurrent charges of one user is served whole', async (t) => {
  const config = testConfig({ ...SHEDDING, WORKERS: 1 })
  const db = await prepareTestData(t, config)
  const server = await startServer(t, config)
  const started = performance.now()
  const answers = await Promise.all(Array.from({ length: 150 }, () => send(server.baseUrl, 'PATCH', '/point', { body: { userId: 1, charge: 10 } })))
  t.comment(`the burst took ${Math.round(performance.now() - started)} ms`)
  t.same(
    answers.filter((res) => res.status !== 200).map((res) => `${res.status} ${res.body?.code}`),
    [],
    'no charge was refused',
  )
  const user = await db.selectFrom('users').select('point').where('id', '=', 1).executeTakeFirstOrThrow()
  t.equal(user.point, config.SEED_POINTS + 150 * 10)
  t.same(await ledgerMismatches(db), [])
})

t.test('100 connections reading a balance on one worker for 3 s: every answer is 2xx', async (t) => {
  const config = testConfig({ ...SHEDDING, WORKERS: 1 })
  await prepareTestData(t, config)
  const server = await startServer(t, config)
  const result = await runLoad({
    url: server.baseUrl,
    connections: 100,
    durationS: 3,
    steps: [
      {
        next: () => {
          const userId = 1 + Math.floor(Math.random() * config.SEED_USERS)
          return { method: 'GET', path: `/point/${userId}`, headers: bearer(identityToken(userId)) }
        },
      },
    ],
  })
  t.ok(result.responses > 100, `the load ran (${result.responses} answers)`)
  t.same(result.statuses, { 200: result.responses }, 'only 200s')
  t.equal(result.errors, 0, 'no request went unanswered')
})

t.test('a MySQL pool held by slow queries: a stream of charges gets fast 503s, then 200s once it frees', async (t) => {
  const { app, db, config } = await buildTestApp(t, SHEDDING)
  const base = await listen(app)
  const holdS = 3
  // Every connection of the worker's pool sleeps: nothing queued behind them can be served.
  const hogs = Promise.all(Array.from({ length: config.MYSQL_POOL_SIZE }, () => sql`SELECT SLEEP(${holdS})`.execute(app.db)))
  let hogging = true
  void hogs.finally(() => (hogging = false))

  const answers: Array<{ res: Reply; ms: number }> = []
  const client = async (userId: number) => {
    while (hogging) {
      const started = performance.now()
      const res = await send(base, 'PATCH', '/point', { body: { userId, charge: 10 } })
      answers.push({ res, ms: performance.now() - started })
    }
  }
  await Promise.all([1, 2, 3, 4, 5].map(client))
  await hogs

  const shed = answers.filter(({ res }) => res.status === 503)
  t.same(answers.filter(({ res }) => res.status !== 200 && res.status !== 503).map(({ res }) => res.status), [], 'every answer is 200 or 503')
  t.ok(shed.length >= 10, `the stream was shed (${shed.length} of ${answers.length} answers)`)
  for (const { res } of shed.slice(0, 20)) assertShedAnswer(t, res.body, res.headers['retry-after'], config.RETRY_AFTER_S)
  // A request that found the pool standing waited at most the target plus the interval; once the
  // worker knew, the door answered at once. Nobody waited out the slow queries.
  const slowest = Math.max(...answers.map(({ ms }) => ms))
  t.ok(slowest < holdS * 1000 - 500, `no request waited for the slow queries (slowest ${Math.round(slowest)} ms)`)
  const sorted = shed.map(({ ms }) => ms).sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]!
  t.ok(median < 100, `a shed answer is fast (median ${Math.round(median)} ms)`)
  const metrics = await app.metrics.registry.metrics()
  t.match(metrics, new RegExp(`^seatrush_pressure_rejections_total ${shed.length}$`, 'm'), 'every shed request counted')

  // The overload is over: the same requests are served again.
  await waitFor('a charge to be served', async () => (await send(base, 'PATCH', '/point', { body: { userId: 1, charge: 10 } })).status === 200)
  // Shed charges changed nothing.
  t.same(await ledgerMismatches(db), [])
  const history = await db.selectFrom('point_history').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  t.equal(Number(history.n), answers.filter(({ res }) => res.status === 200).length + 1, 'one history row per served charge')
})

t.test('an event loop kept busy past the target sheds at the door, and serves again once it is free', async (t) => {
  const { app, db, config } = await buildTestApp(t, SHEDDING)
  // Turns of the loop each longer than the target: every request waits longer than it should.
  const stopHogging = hogLoop(t, config.SHED_TARGET_MS + 100)

  let injected = 0
  const charge = () => {
    injected++
    return app.inject({ method: 'PATCH', url: '/point', headers: bearer(identityToken(1)), payload: { userId: 1, charge: 10 } })
  }
  const shed = await waitFor('a request to be shed', async () => {
    const res = await charge()
    return res.statusCode === 503 && res
  })
  assertShedAnswer(t, shed.json(), shed.headers['retry-after'], config.RETRY_AFTER_S)
  // Over HTTP the refusal comes from the server's first check, before Fastify: the same answer,
  // and Fastify never sees the request, so its per-request metric does not count it (a refusal
  // from the onRequest hook would be counted there).
  const base = await listen(app)
  // Injected requests are all Fastify's: counted once their onResponse hooks have run.
  const handledBefore = await waitFor('the injected requests counted', async () => {
    const count = await requestsHandled(app)
    return count >= injected && count
  })
  let servedOverHttp = 0
  const atDoor = await waitFor('a request over HTTP to be shed', async () => {
    const res = await send(base, 'PATCH', '/point', { body: { userId: 1, charge: 10 } })
    if (res.status !== 503) servedOverHttp++
    return res.status === 503 && res
  })
  assertShedAnswer(t, atDoor.body, atDoor.headers['retry-after'], config.RETRY_AFTER_S)
  t.equal(atDoor.headers['content-type'], 'application/json; charset=utf-8')
  // Every answer Fastify gave is counted once its onResponse hook has run; the shed one never is.
  const handled = await waitFor('the served requests counted', async () => {
    const count = (await requestsHandled(app)) - handledBefore
    return count >= servedOverHttp && { count }
  })
  t.equal(handled.count, servedOverHttp, 'the shed request never reached Fastify')
  stopHogging()

  await waitFor('a charge to be served', async () => (await charge()).statusCode === 200, { timeoutMs: 5000 })
  t.same(await ledgerMismatches(db), [], 'the shed charge changed nothing')
})

t.test('with shedding off, the same slow queries make requests wait and every one is served', async (t) => {
  const { app, db, config } = await buildTestApp(t, { SHED_LOAD: false })
  const base = await listen(app)
  const hogs = Promise.all(Array.from({ length: config.MYSQL_POOL_SIZE }, () => sql`SELECT SLEEP(1)`.execute(app.db)))
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => send(base, 'PATCH', '/point', { body: { userId: 1 + (i % 10), charge: 10 } })))
  await hogs
  t.same([...new Set(answers.map((res) => res.status))], [200])
  t.same(await ledgerMismatches(db), [])
})

t.test('with refusals paced (SHED_REFUSALS_PER_S=1), a burst at the closed door is refused whole, in the one shape, each counted once', async (t) => {
  const { app, config } = await buildTestApp(t, { ...SHEDDING, SHED_REFUSALS_PER_S: 1 })
  const base = await listen(app)
  const stopHogging = hogLoop(t, config.SHED_TARGET_MS + 100)
  await waitFor('the door to close', async () => (await send(base, 'GET', '/concerts/1')).status === 503, { timeoutMs: 30_000 })
  const before = app.shedding.rejected

  // With this loop a turn takes 600 ms, and the client shares it: the burst reaches the worker
  // over several turns, faster than one a second, so the pacer holds some of it (test/refusal-
  // pacer.test.ts measures the pace itself). Held or not, every request is told.
  const answers = await Promise.all(Array.from({ length: 6 }, () => send(base, 'GET', '/concerts/1', { timeoutMs: 30_000 })))
  stopHogging()
  t.same(
    answers.map((res) => res.status),
    Array(6).fill(503),
    'every one is refused, none lost',
  )
  for (const res of answers) assertShedAnswer(t, res.body, res.headers['retry-after'], config.RETRY_AFTER_S)
  t.equal(app.shedding.rejected - before, 6, 'each counted once')
  t.equal(app.shedding.rejectedAfterWait, 0, 'none of them as refused after a MySQL wait: the door refused them before any work')
})

t.test("while MySQL's pool is overloaded, the waiting room's own calls are still answered", async (t) => {
  const { app, config } = await buildTestApp(t, SHEDDING)
  const base = await listen(app)
  const joined = await joinQueue(base, 1)
  t.equal(joined.status, 200)
  // Every connection of the worker's pool sleeps: charges queue behind them until the worker sheds.
  const hogs = Promise.all(Array.from({ length: config.MYSQL_POOL_SIZE }, () => sql`SELECT SLEEP(5)`.execute(app.db)))
  await waitFor('a charge to be refused', async () => (await send(base, 'PATCH', '/point', { body: { userId: 2, charge: 10 } })).status === 503, {
    timeoutMs: 10_000,
  })
  t.ok(app.dbQueue.overloaded, 'the pool is overloaded')
  // Charges let in now wait in the line (until the target refuses them): the line stands, and the
  // door refuses whatever may need MySQL.
  let queueCallsWhileStanding = 0
  app.server.on('request', (request) => {
    if (request.url === QUEUE_PATH && app.dbQueue.standing) queueCallsWhileStanding++
  })
  const refusedAfterWait = app.shedding.rejectedAfterWait
  t.ok(refusedAfterWait > 0, `the charges that waited for a connection were counted as refused after waiting (${refusedAfterWait})`)
  const waiting = [6, 7, 8].map((userId) => send(base, 'PATCH', '/point', { body: { userId, charge: 10 } }))
  await waitFor('the line to stand', () => app.dbQueue.standing, { timeoutMs: 10_000 })

  const [polls, joins] = await Promise.all([
    Promise.all(Array.from({ length: 20 }, () => send(base, 'GET', '/concert/wait', { headers: bearer(joined.body.token) }))),
    Promise.all([3, 4, 5].map((userId) => joinQueue(base, userId))),
  ])
  const charges = await Promise.all(waiting)
  await hogs
  t.ok(queueCallsWhileStanding > 0, `queue calls arrived while the line stood (${queueCallsWhileStanding})`)
  t.same([...new Set(polls.map((res) => res.status))], [200], 'every poll answered 200')
  t.same(joins.map((res) => res.status), [200, 200, 200], 'every join answered 200')
  t.same([...new Set(charges.map((res) => res.status))], [503], 'while the charges in the line were refused')
  t.notOk(mayNeedMysql('/concert/wait?concertId=2'))
  t.ok(mayNeedMysql('/concert/waiting'))
})
