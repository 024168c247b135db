import t from 'tap'
import { SEED_CONCERT_ID } from '../src/db/seed.js'
import { QUEUED_PER_THREAD } from '../src/concerts/serializer.js'
import { buildTestApp, listen } from './helpers/app.js'
import { OPEN_QUEUE, activeToken } from './helpers/queue.js'
import { bearer, send } from './helpers/http.js'
import { addHall } from './helpers/halls.js'

t.test('a seat-map pool whose queue is full answers 503 SERVICE_OVERLOADED instead of queueing more', async (t) => {
  // No cache: every request is a task for the one thread.
  const { app, db } = await buildTestApp(t, { ...OPEN_QUEUE, SERIALIZER: 'worker', SERIALIZER_THREADS: 1, CONCERT_CACHE_MS: 0 })
  const hall = await addHall(db, SEED_CONCERT_ID, 20_000)
  const url = await listen(app)
  const token = await activeToken(url, 7)
  const pool = app.serializer.pool!
  t.equal(pool.options.maxQueue, QUEUED_PER_THREAD, 'the queue is bounded per thread')

  let longestQueue = 0
  const watch = setInterval(() => (longestQueue = Math.max(longestQueue, pool.queueSize)), 1)
  // Far more concurrent maps than one thread and its queue can hold at once.
  const burst = 20 * QUEUED_PER_THREAD
  const answers = await Promise.all(Array.from({ length: burst }, () => send(url, 'GET', `/concert/seats/${hall}`, { headers: bearer(token), timeoutMs: 60_000 })))
  clearInterval(watch)

  const statuses = answers.map((answer) => answer.status)
  const refused = answers.filter((answer) => answer.status === 503)
  t.same([...new Set(statuses)].sort(), [200, 503], 'every map is either served or refused')
  t.ok(refused.length > 0, `${refused.length} of ${burst} refused`)
  t.ok(refused.every((answer) => answer.body.code === 'SERVICE_OVERLOADED' && answer.headers['retry-after']), 'refused like any shed request: the code and Retry-After')
  t.ok(longestQueue <= QUEUED_PER_THREAD, `the queue never held more than its bound (longest ${longestQueue})`)

  // Once the burst is over the pool serves again.
  t.equal((await send(url, 'GET', `/concert/seats/${hall}`, { headers: bearer(token) })).status, 200, 'served again after the burst')
})
