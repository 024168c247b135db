import t from 'tap'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { resolve } from 'node:path'
import { buildTestApp, listen } from './helpers/app.js'
import { MariaDb } from './helpers/mariadb.js'
import { RedisServer } from './helpers/redis-server.js'
import { OPEN_QUEUE, activeTokens } from './helpers/queue.js'
import { assertInvariants } from './helpers/invariants.js'
import { bearer, send } from './helpers/http.js'
import { range } from './helpers/lists.js'
import { SeatPool, Traffic, buyersInBackground } from './helpers/traffic.js'
import { waitFor } from './helpers/wait.js'
import { createDb } from '../src/db/connection.js'

const dir = resolve('.data', `engine-crashes-${randomBytes(4).toString('hex')}`)
const mysql = await MariaDb.start(resolve(dir, 'mariadb'))
// As the embedded default of `npm start` runs it (src/runtime/services.ts).
const redis = await RedisServer.start(resolve(dir, 'redis'), ['--appendonly', 'yes', '--appendfsync', 'everysec'])
t.teardown(async () => {
  await Promise.all([mysql.stop('SIGKILL'), redis.stop('SIGKILL')])
  rmSync(dir, { recursive: true, force: true })
})

t.test('mariadbd killed -9 mid payments: every payment answered 200 is kept whole, and the app recovers', async (t) => {
  const { app, config } = await buildTestApp(t, { ...OPEN_QUEUE, MYSQL_URL: mysql.url('seatrush_crash') })
  const base = await listen(app)
  const db = createDb(config.MYSQL_URL, 2)
  t.teardown(() => db.destroy())
  const details = (await db.selectFrom('concert_details').select('id').where('concert_id', '=', 1).execute()).map((d) => d.id)
  const seats = new SeatPool(details, config.SEATS_PER_DETAIL)
  const traffic = new Traffic()
  const deadline = Date.now() + 150_000

  const buyers = buyersInBackground(40, { baseUrl: base, seats, traffic, deadline })
  await waitFor('a few payments before the crash', () => buyers.paid() >= 5, { timeoutMs: 60_000 })
  const paidBefore = buyers.paid()
  const killedAt = Date.now()
  await mysql.stop('SIGKILL')
  await mysql.restart()
  const upAfter = Date.now() - killedAt
  const purchases = await buyers.purchases
  // The first payment sent after the kill that was answered 200.
  const firstPaymentAfter = Math.min(
    ...traffic.outcomes.filter((o) => o.route.startsWith('POST /concert/reservation/days') && o.status === 200 && o.startedAt > killedAt).map((o) => o.startedAt + o.ms),
  )
  t.comment(
    `${paidBefore} paid before the kill; mariadbd answering again ${upAfter} ms after it; first payment ${firstPaymentAfter - killedAt} ms after it; ` +
      `${traffic.outcomes.length} calls: ${traffic.summary()}`,
  )

  t.same(traffic.serverErrors(), [], 'no 5xx but 503')
  t.equal(purchases.length, 40, 'every buyer paid, without restarting the app')
  const rows = await db
    .selectFrom('payments as p')
    .innerJoin('reservations as r', 'r.id', 'p.reservation_id')
    .select(['p.id', 'r.status'])
    .where('p.id', 'in', purchases.map((p) => p.paymentId))
    .execute()
  t.equal(rows.length, 40, 'every payment answered 200 is in the database')
  t.ok(rows.every((row) => row.status === 'CONFIRMED'), 'with its reservation confirmed')
  await assertInvariants(t, db)
})

t.test('redis-server killed -9 with appendonly: places in line and active slots survive its restart', async (t) => {
  const { app } = await buildTestApp(t, { REDIS_URL: redis.url, MAX_ACTIVE: 5, ADMIT_BATCH: 5, ADMIT_INTERVAL_MS: 100 })
  const base = await listen(app)
  const users = range(1, 20)
  const tokens = new Map<number, string>()
  for (const [i, token] of (await activeTokens(base, users.slice(0, 5))).entries()) tokens.set(users[i]!, token)
  for (const userId of users.slice(5)) tokens.set(userId, (await send(base, 'POST', '/concert/wait', { body: { userId } })).body.token)
  const standings = async () =>
    Promise.all(users.map(async (userId) => {
      const reply = await send(base, 'GET', '/concert/wait', { headers: bearer(tokens.get(userId)!) })
      return reply.status === 200 ? `${userId}:${reply.body.status}:${reply.body.position}` : `${userId}:${reply.status}`
    }))
  const before = await standings()
  t.equal(before.filter((s) => s.endsWith(':ACTIVE:0')).length, 5, 'five admitted, the rest in line')

  const killedAt = Date.now()
  await redis.stop('SIGKILL')
  await redis.restart()
  await waitFor('the app to reach Redis again', async () => (await send(base, 'GET', '/health')).status === 200, { timeoutMs: 15_000 })
  t.comment(`queue answering again ${Date.now() - killedAt} ms after the kill`)
  t.same(await standings(), before, 'the same users active, the others at the same places')
})
