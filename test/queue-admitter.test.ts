import t from 'tap'
import { buildApp } from '../src/app.js'
import { listen, prepareTestData, testConfig } from './helpers/app.js'
import { bearer, send } from './helpers/http.js'
import { activeToken, joinQueue } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

t.test('an app restarted with a larger ADMIT_INTERVAL_MS on the same Redis keeps admitting', async (t) => {
  const config = testConfig({ MAX_ACTIVE: 1, ADMIT_BATCH: 1, ADMIT_INTERVAL_MS: 20 })
  await prepareTestData(t, config)
  const before = await buildApp(config, { logger: false })
  const first = await activeToken(await listen(before), 1)
  await before.close()

  const after = await buildApp({ ...config, ADMIT_INTERVAL_MS: 400 }, { logger: false })
  t.teardown(() => after.close())
  const base = await listen(after)
  const waiter = (await joinQueue(base, 2)).body.token
  t.equal((await send(base, 'DELETE', '/concert/wait', { headers: bearer(first) })).status, 204)
  await waitFor('user 2 admitted by the restarted app', async () => (await send(base, 'GET', '/concert/wait', { headers: bearer(waiter) })).body.status === 'ACTIVE', {
    timeoutMs: 5000,
  })
  t.pass('admission continued under the longer interval')
})

t.test('a last tick stored in the future (the Redis clock went back) does not stall admission', async (t) => {
  const config = testConfig({ MAX_ACTIVE: 1, ADMIT_BATCH: 1, ADMIT_INTERVAL_MS: 50 })
  await prepareTestData(t, config)
  const app = await buildApp(config, { logger: false })
  t.teardown(() => app.close())
  const base = await listen(app)
  const first = await activeToken(base, 1)
  const waiter = (await joinQueue(base, 2)).body.token

  const concert = app.queue.keys(1).concert
  await app.redis.hset(concert, 'lastTick', Date.now() + 3_600_000)
  t.equal((await send(base, 'DELETE', '/concert/wait', { headers: bearer(first) })).status, 204)
  await waitFor('user 2 admitted', async () => (await send(base, 'GET', '/concert/wait', { headers: bearer(waiter) })).body.status === 'ACTIVE', { timeoutMs: 5000 })
  t.ok(Number(await app.redis.hget(concert, 'lastTick')) <= Date.now(), 'the stored tick time is back to the present')
})
