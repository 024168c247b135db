import t from 'tap'
import { buildApp } from '../src/app.js'
import { buildTestApp, listen, prepareTestData, testConfig } from './helpers/app.js'
import { OPEN_QUEUE, activeToken, joinQueue } from './helpers/queue.js'
import { bearer, send } from './helpers/http.js'
import { isErrorResponse } from './helpers/error-shape.js'

const join = (base: string, userId: number) => joinQueue(base, userId)

t.test('a user joining more than RATE_LIMIT_WAIT_PER_MIN times a minute gets 429; another user does not', async (t) => {
  const { app } = await buildTestApp(t, { RATE_LIMIT_WAIT_PER_MIN: 3 })
  const base = await listen(app)
  const allowed = [await join(base, 7), await join(base, 7), await join(base, 7)]
  t.same(allowed.map((res) => res.status), [200, 200, 200])
  t.same(allowed.map((res) => res.headers['x-ratelimit-remaining']), ['2', '1', '0'])

  const refused = await join(base, 7)
  t.equal(refused.status, 429)
  t.ok(isErrorResponse(429, refused.body), 'the one error shape')
  t.match(refused.body, { statusCode: 429, error: 'Too Many Requests', code: 'RATE_LIMITED', message: /^Too many requests, retry in \d+ \w+$/ })
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After is the rest of the window (${retryAfter} s)`)

  t.equal((await join(base, 8)).status, 200, 'another user is not limited')
  t.equal((await join(base, 7)).status, 429, 'the first user still is')
})

t.test('the limit holds across two app instances sharing one Redis', async (t) => {
  const config = testConfig({ RATE_LIMIT_WAIT_PER_MIN: 3 })
  await prepareTestData(t, config)
  const apps = [await buildApp(config, { logger: false }), await buildApp(config, { logger: false })]
  t.teardown(() => Promise.all(apps.map((app) => app.close())))
  const [a, b] = [await listen(apps[0]!), await listen(apps[1]!)]
  const statuses = []
  for (const base of [a, b, a, b, a]) statuses.push((await join(base, 9)).status)
  t.same(statuses, [200, 200, 200, 429, 429], 'three joins in all, whichever instance took them')
})

t.test('payments are limited per token user', async (t) => {
  const { app } = await buildTestApp(t, { ...OPEN_QUEUE, RATE_LIMIT_PAY_PER_MIN: 2 })
  const base = await listen(app)
  const tokens = { 12: await activeToken(base, 12), 13: await activeToken(base, 13) }
  const pay = (userId: 12 | 13) =>
    send(base, 'POST', '/concert/reservation/days', { body: { userId, concertDetailId: 1, seatNo: 1 }, headers: bearer(tokens[userId]) })
  // Nothing is held, so the route refuses these; they count against the limit all the same.
  const first = [await pay(12), await pay(12)]
  t.notOk(first.some((res) => res.status === 429), `the first two are the route's to answer (${first.map((res) => res.status)})`)
  const third = await pay(12)
  t.equal(third.status, 429)
  t.equal(third.body.code, 'RATE_LIMITED')
  t.ok(Number(third.headers['retry-after']) >= 1)
  t.not((await pay(13)).status, 429, 'another user is not limited')
})

t.test('with Redis down the limiter steps aside instead of failing the call', async (t) => {
  const { app } = await buildTestApp(t, { ...OPEN_QUEUE, RATE_LIMIT_WAIT_PER_MIN: 3, RATE_LIMIT_PAY_PER_MIN: 3 })
  const base = await listen(app)
  const userId = 14
  const token = await activeToken(base, userId)
  const concertDetailId: number = (await send(base, 'GET', '/concerts/1')).body[0].concertDetailId
  const seat = { userId, concertDetailId, seatNo: 9 }
  t.equal((await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })).status, 200)
  const pay = () => send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'pay-14' } })
  const paid = await pay()
  t.equal(paid.status, 200)

  app.redis.disconnect()
  // A retried payment is answered from MySQL alone: the limiter must not stand in its way.
  const retry = await pay()
  t.equal(retry.status, 200)
  t.same(retry.body, paid.body)
  // Joining needs Redis itself: 503 from the route, never a 500.
  const joined = await join(base, 15)
  t.equal(joined.status, 503)
  t.equal(joined.body.code, 'DEPENDENCY_UNAVAILABLE')
})
