import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { Redis } from 'ioredis'
import { concertQueueKeys } from '../src/queue/queue.js'
import { buildTestApp, listen, prepareTestData, testConfig } from './helpers/app.js'
import { OPEN_QUEUE, activeToken, joinQueue } from './helpers/queue.js'
import { startServer } from './helpers/server-process.js'
import { bearer, send } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/

/** Lines of a Prometheus text exposition that are neither comments nor samples. */
function unparsable(text: string): string[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('# ') && !SAMPLE.test(line))
}

/** The value of the sample `name` with exactly these labels, or undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = SAMPLE.exec(line)
    if (!match || match[1] !== name) continue
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]))
    const wanted = Object.entries(labels)
    if (Object.keys(found).length === wanted.length && wanted.every(([key, value]) => found[key] === value)) return Number(match[3])
  }
  return undefined
}

const requests = (method: string, route: string, status: number) => ({ method, route, status_code: String(status) })

t.test('GET /metrics counts requests by route pattern and status, and each hold and payment once', async (t) => {
  const { app } = await buildTestApp(t, OPEN_QUEUE)
  const base = await listen(app)
  const userId = 5
  const token = await activeToken(base, userId)
  const concertDetailId: number = (await send(base, 'GET', '/concerts/1')).body[0].concertDetailId
  const seat = { userId, concertDetailId, seatNo: 3 }
  t.equal((await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })).status, 200)
  const pay = () => send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'pay-5' } })
  t.equal((await pay()).status, 200)
  t.equal((await pay()).status, 200, 'the retry answers the first payment')
  for (let i = 0; i < 3; i++) t.equal((await send(base, 'GET', '/point/1')).status, 200)
  t.equal((await send(base, 'GET', '/point/99999')).status, 404)
  t.equal((await send(base, 'GET', '/no/such/route')).status, 404)
  // Paying gave up user 5's slot; user 6 takes one, so the gauge has something to show.
  await activeToken(base, 6)

  const res = await send(base, 'GET', '/metrics')
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text: string = res.body
  t.same(unparsable(text), [], 'every line is a comment or a sample')

  t.equal(sample(text, 'seatrush_holds_total'), 1)
  t.equal(sample(text, 'seatrush_payments_total'), 1, 'the replayed payment is not counted again')
  t.equal(sample(text, 'seatrush_queue_admissions_total'), 2, 'users 5 and 6 admitted')
  t.equal(sample(text, 'seatrush_queue_users', { state: 'active' }), 1)
  t.equal(sample(text, 'seatrush_queue_users', { state: 'waiting' }), 0)
  t.equal(sample(text, 'seatrush_pressure_rejections_total'), 0)

  const count = 'http_request_duration_seconds_count'
  t.equal(sample(text, count, requests('GET', '/point/:userId', 200)), 3, 'labelled by the route pattern, not the URL')
  t.equal(sample(text, count, requests('GET', '/point/:userId', 404)), 1, 'a refusal is labelled by its status')
  t.equal(sample(text, count, requests('GET', 'unmatched', 404)), 1, 'unknown routes share one label')
  t.equal(sample(text, count, requests('PATCH', '/concert/seat', 200)), 1)
  t.equal(sample(text, count, requests('POST', '/concert/reservation/days', 200)), 2)
  t.equal(sample(text, 'http_request_duration_seconds_bucket', { ...requests('GET', '/point/:userId', 200), le: '+Inf' }), 3)
  t.notOk(text.includes('/point/1"'), 'no raw URL becomes a label')

  const openConnections = sample(text, 'seatrush_db_pool_connections', { state: 'open' })
  t.ok(openConnections! >= 1, `the pool has open connections (${openConnections})`)
  t.ok(openConnections! <= app.config.MYSQL_POOL_SIZE, 'never more than MYSQL_POOL_SIZE')
  t.equal(sample(text, 'seatrush_db_pool_connections', { state: 'waiting' }), 0, 'nothing waits for a connection at rest')
  t.ok(sample(text, 'seatrush_db_pool_connections', { state: 'idle' })! >= 1, 'idle connections between requests')

  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(sample(text, name) !== undefined, `default process metric ${name}`)
  }
})

t.test('requests shed under pressure are counted', async (t) => {
  // Any heap is over 1 MB: once under-pressure has sampled it, every request is shed.
  const { app } = await buildTestApp(t, { SHED_LOAD: true, MAX_HEAP_USED_MB: 1, MAX_EVENT_LOOP_UTILIZATION: 0 })
  let shed = 0
  const deadline = Date.now() + 5000
  while (shed < 3 && Date.now() < deadline) {
    const res = await app.inject({ method: 'GET', url: '/point/1' })
    if (res.statusCode === 503) {
      shed++
      t.equal(res.json().code, 'SERVICE_OVERLOADED')
    } else {
      await delay(50)
    }
  }
  t.equal(shed, 3, 'the worker sheds')
  // GET /metrics is shed as well, so read the registry directly.
  const text = await app.metrics.registry.metrics()
  t.equal(sample(text, 'seatrush_pressure_rejections_total'), 3)
  t.equal(sample(text, 'http_request_duration_seconds_count', requests('GET', '/point/:userId', 503)), 3)
})

t.test('in the cluster, GET /metrics sums every worker and reads the queue once', async (t) => {
  const config = testConfig({ WORKERS: 2, SEED_USERS: 50, MAX_ACTIVE: 1, ADMIT_BATCH: 1, ADMIT_INTERVAL_MS: 50 })
  await prepareTestData(t, config)
  const server = await startServer(t, config)

  const N = 20
  const pids = new Set<number>()
  for (let i = 0; i < N; i++) {
    const health = await send(server.baseUrl, 'GET', '/health')
    t.equal(health.status, 200)
    pids.add(health.body.pid)
  }
  t.equal(pids.size, 2, 'both workers answered')

  // One slot: user 1 is admitted, users 2 and 3 wait.
  for (const userId of [1, 2, 3]) t.equal((await joinQueue(server.baseUrl, userId)).status, 200)
  const redis = new Redis(config.REDIS_URL)
  t.teardown(() => redis.disconnect())
  await waitFor('user 1 to be admitted', async () => (await redis.zcard(concertQueueKeys(config.REDIS_KEY_PREFIX, 1).active)) >= 1, { timeoutMs: 5000 })

  // Each scrape reaches one worker; both must answer for the whole cluster.
  for (let scrape = 0; scrape < 2; scrape++) {
    const res = await send(server.baseUrl, 'GET', '/metrics')
    t.equal(res.status, 200)
    const text: string = res.body
    t.same(unparsable(text), [])
    t.equal(sample(text, 'http_request_duration_seconds_count', requests('GET', '/health', 200)), N, 'requests summed over the workers')
    t.equal(sample(text, 'http_request_duration_seconds_count', requests('POST', '/concert/wait', 200)), 3)
    t.equal(sample(text, 'seatrush_queue_users', { state: 'active' }), 1, 'the queue gauge is not doubled')
    t.equal(sample(text, 'seatrush_queue_users', { state: 'waiting' }), 2, 'the queue gauge is not doubled')
    t.equal(sample(text, 'seatrush_queue_admissions_total'), 1, 'one admission, counted by the one worker that made it')
    t.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 0)
  }
})
