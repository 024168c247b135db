import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { ledgerMismatches } from './helpers/invariants.js'
import { send } from './helpers/http.js'

t.test('with shedding on, requests beyond the MySQL wait queue get a fast 503, the rest are served', async (t) => {
  // One connection and room for two waiters: of 60 simultaneous charges most must be turned away.
  // The event-loop checks are off so that only the MySQL wait queue decides.
  const { app, db } = await buildTestApp(t, {
    SHED_LOAD: true,
    MAX_EVENT_LOOP_DELAY_MS: 0,
    MAX_EVENT_LOOP_UTILIZATION: 0,
    MYSQL_POOL_SIZE: 1,
    MYSQL_QUEUE_LIMIT: 2,
    RETRY_AFTER_S: 3,
  })
  const base = await listen(app)
  const answers = await Promise.all(
    Array.from({ length: 60 }, (_, i) => send(base, 'PATCH', '/point', { body: { userId: 1 + (i % 20), charge: 10 } })),
  )
  const served = answers.filter((res) => res.status === 200)
  const shed = answers.filter((res) => res.status === 503)
  t.equal(served.length + shed.length, 60, `every answer is 200 or 503 (${answers.map((res) => res.status).join(',')})`)
  t.ok(served.length >= 1, `some are served (${served.length})`)
  t.ok(shed.length >= 1, `some are shed (${shed.length})`)
  for (const res of shed) {
    t.same(res.body, { statusCode: 503, error: 'Service Unavailable', message: 'Service is under pressure, retry shortly', code: 'SERVICE_OVERLOADED' })
    t.equal(res.headers['retry-after'], '3')
  }

  // A shed charge changed nothing: balances still match their history, and exactly the served ones were booked.
  t.same(await ledgerMismatches(db), [])
  const history = await db.selectFrom('point_history').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  t.equal(Number(history.n), served.length, 'one history row per served charge')

  const metrics: string = (await send(base, 'GET', '/metrics')).body
  t.match(metrics, new RegExp(`^seatrush_pressure_rejections_total ${shed.length}$`, 'm'), 'counted as shed')
})

t.test('with shedding off, the same burst waits and every request is served', async (t) => {
  const { app, db } = await buildTestApp(t, { SHED_LOAD: false, MYSQL_POOL_SIZE: 1, MYSQL_QUEUE_LIMIT: 2 })
  const base = await listen(app)
  const answers = await Promise.all(
    Array.from({ length: 60 }, (_, i) => send(base, 'PATCH', '/point', { body: { userId: 1 + (i % 20), charge: 10 } })),
  )
  t.same([...new Set(answers.map((res) => res.status))], [200])
  t.same(await ledgerMismatches(db), [])
})
