import t from 'tap'
import { buildApp } from '../src/app.js'
import { buildTestApp, listen, prepareTestData, testConfig } from './helpers/app.js'
import { isErrorResponse } from './helpers/error-shape.js'
import { bearer, send } from './helpers/http.js'
import { TEST_ADMIN_TOKEN, changeQueue, joinQueue } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

t.test('without ADMIN_TOKEN configured the admin routes do not exist', async (t) => {
  const { app } = await buildTestApp(t)
  const base = await listen(app)
  for (const [method, body] of [['GET'], ['PATCH', { paused: true }]] as const) {
    const reply = await send(base, method, '/admin/queues/1', { body, headers: bearer(TEST_ADMIN_TOKEN) })
    t.equal(reply.status, 404, `${method} /admin/queues/1`)
  }
})

t.test('the admin routes: 401 without or with a wrong token, 400 on a bad setting, 404 on an unknown concert', async (t) => {
  const { app } = await buildTestApp(t, { ADMIN_TOKEN: TEST_ADMIN_TOKEN })
  const base = await listen(app)
  const refused: Record<string, string>[] = [{}, bearer('wrong-token-wrong-token-wrong'), bearer(`${TEST_ADMIN_TOKEN}x`), { authorization: TEST_ADMIN_TOKEN }]
  for (const headers of refused) {
    for (const [method, body] of [['GET'], ['PATCH', { paused: true }]] as const) {
      const reply = await send(base, method, '/admin/queues/1', { body, headers })
      t.same([reply.status, reply.body.code], [401, 'ADMIN_TOKEN_INVALID'], `${method} with ${JSON.stringify(headers)}`)
      t.ok(isErrorResponse(401, reply.body))
    }
  }

  for (const change of [{}, { maxActive: 0 }, { admitBatch: 1.5 }, { admitIntervalMs: '100' }, { admitIntervalMs: 5 }, { paused: 'yes' }, { saleOpensAt: 'tomorrow' }, { saleOpensAt: '2026-13-01T00:00:00Z' }, { surprise: 1 }]) {
    const reply = await changeQueue(base, 1, change)
    t.equal(reply.status, 400, `${JSON.stringify(change)} is refused`)
    t.ok(isErrorResponse(400, reply.body))
  }
  const view = await send(base, 'GET', '/admin/queues/1', { headers: bearer(TEST_ADMIN_TOKEN) })
  t.match(view.body.settings, { paused: false, maxActive: app.config.MAX_ACTIVE }, 'no refused change was applied')
  t.same([(await send(base, 'GET', '/admin/queues/999', { headers: bearer(TEST_ADMIN_TOKEN) })).status, (await changeQueue(base, 999, { paused: true })).status], [404, 404])
})

t.test('a change made through one app instance is in force in another on the same Redis', async (t) => {
  const config = testConfig({ ADMIN_TOKEN: TEST_ADMIN_TOKEN, MAX_ACTIVE: 100, ADMIT_BATCH: 100, ADMIT_INTERVAL_MS: 50 })
  await prepareTestData(t, config)
  const [a, b] = [await buildApp(config, { logger: false }), await buildApp(config, { logger: false })]
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const [baseA, baseB] = [await listen(a), await listen(b)]
  // The seeded sale opened in the past; the first admitter tick records the opening.
  await waitFor('the first tick opened the sale', async () => (await send(baseA, 'GET', '/admin/queues/1', { headers: bearer(TEST_ADMIN_TOKEN) })).body.settings.open)

  const changed = await changeQueue(baseA, 1, { paused: true, maxActive: 2, admitBatch: 1, admitIntervalMs: 2000 })
  t.equal(changed.status, 200)
  t.match(changed.body, { concertId: 1, waiting: 0, prequeue: 0, active: 0, settings: { paused: true, maxActive: 2, admitBatch: 1, admitIntervalMs: 2000, open: true } })
  const seenByB = await send(baseB, 'GET', '/admin/queues/1', { headers: bearer(TEST_ADMIN_TOKEN) })
  t.same(seenByB.body.settings, changed.body.settings, 'the other instance reports the same settings')

  // Only instance B left: its admitter and its answers follow what A stored.
  await a.close()
  const tokens = []
  for (const userId of [1, 2, 3]) tokens.push((await joinQueue(baseB, userId)).body)
  t.same(tokens.map((joined) => [joined.status, joined.position, joined.etaSeconds]), [['WAITING', 1, 2], ['WAITING', 2, 4], ['WAITING', 3, 6]], 'positions and ETAs follow the batch and interval in force')
  const tick = async () => Number(await b.redis.hget(b.queue.keys(1).concert, 'lastTick'))
  const pausedAt = await tick()
  await waitFor('a tick of the paused queue', async () => (await tick()) > pausedAt, { timeoutMs: 5000 })
  t.equal((await send(baseB, 'GET', '/admin/queues/1', { headers: bearer(TEST_ADMIN_TOKEN) })).body.active, 0, 'paused: nobody admitted')
  t.equal((await send(baseB, 'GET', '/concert/wait', { headers: bearer(tokens[0].token) })).status, 200, 'joining and polling still work while paused')

  t.equal((await changeQueue(baseB, 1, { paused: false, admitIntervalMs: 50, admitBatch: 5 })).status, 200)
  const full = await waitFor('the queue filled to its max active', async () => {
    const view = (await send(baseB, 'GET', '/admin/queues/1', { headers: bearer(TEST_ADMIN_TOKEN) })).body
    return view.active === 2 && view
  })
  t.match(full, { waiting: 1, active: 2, admittedPerMinute: 2 }, 'admitted up to the max active set through the other instance, and counted')
})
