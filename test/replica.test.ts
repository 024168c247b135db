import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { ReplicatedMariaDb } from './helpers/mariadb.js'
import { OPEN_QUEUE, activeToken } from './helpers/queue.js'
import { assertInvariants } from './helpers/invariants.js'
import { bearer, send } from './helpers/http.js'
import { range } from './helpers/lists.js'
import { waitFor } from './helpers/wait.js'

const servers = await ReplicatedMariaDb.start()
t.teardown(() => servers.stop())

const database = 'seatrush_replica_test'
const MARKER = 'Read on the replica'
const MAX_LAG_MS = 1000

const { app, config } = await buildTestApp(t, {
  ...OPEN_QUEUE,
  MYSQL_URL: servers.primary.url(database),
  MYSQL_REPLICA_URL: servers.replicaUrl(database),
  REPLICA_MAX_LAG_MS: MAX_LAG_MS,
  // Every concert read reaches the database, so each one shows where it was served.
  CONCERT_CACHE_MS: 0,
})
const base = await listen(app)
await servers.waitUntilCaughtUp()
// A title only the replica has: a concert page showing it was read there.
await servers.replica.query(`UPDATE ${database}.concerts SET title = '${MARKER}' WHERE id = 1`)

const readTitles = async (count: number) => {
  const replies = await Promise.all(range(1, count).map(() => send(base, 'GET', '/concert/1')))
  return replies.map((reply) => (reply.status === 200 ? reply.body.title : `status ${reply.status}`))
}
const servedBy = (titles: string[]) => new Set(titles.map((title) => (title === MARKER ? 'replica' : title.startsWith('status') ? title : 'primary')))
const readsGoTo = (target: 'replica' | 'primary', timeoutMs = 15_000) =>
  waitFor(`reads to go to the ${target}`, () => app.replicaStatus().target === target, { timeoutMs })

/** Reads a concert page every 20 ms until `until` resolves; answers every title read. */
async function readThroughout(until: Promise<unknown>): Promise<string[]> {
  const titles: string[] = []
  let done = false
  void until.finally(() => (done = true))
  while (!done) {
    titles.push(...(await readTitles(1)))
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await until
  return titles
}

t.test('concert reads come from the replica; holds and payments never go there', async (t) => {
  await readsGoTo('replica')
  t.ok(app.replicaStatus().lagMs! <= MAX_LAG_MS, `replica ${app.replicaStatus().lagMs} ms behind`)
  const before = await servers.readerCommands()
  const titles = await readTitles(40)
  const selects = (await servers.readerCommands()).selects - before.selects
  t.same(servedBy(titles), new Set(['replica']), 'every page shows the title only the replica has')
  t.ok(selects >= 40, `the replica counted ${selects} SELECTs by the app for 40 concert pages`)
  const options = await send(base, 'GET', '/concerts/1')
  t.equal(options.status, 200)

  const userId = 5
  const token = await activeToken(base, userId)
  const detail = (await send(base, 'GET', '/concert/reservation/days/1', { headers: bearer(token) })).body[0].concertDetailId
  const seats = await send(base, 'GET', `/concert/seats/${detail}`, { headers: bearer(token) })
  t.equal(seats.status, 200)
  const seat = { userId, concertDetailId: detail, seatNo: 4 }
  t.equal((await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })).status, 200, 'hold')
  const paid = await send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'replica-5' } })
  t.equal(paid.status, 200, 'payment')
  const [row] = await servers.primary.query<{ status: string }[]>(`SELECT status FROM ${database}.reservations WHERE id = ${paid.body.reservationId}`)
  t.equal(row?.status, 'CONFIRMED', 'the payment is on the primary')
  t.equal((await servers.readerCommands()).writes, 0, 'the app ran no INSERT, UPDATE or DELETE on the replica')
  await t.rejects(app.dbRead.transaction().execute(async () => {}), /outside transactions/, 'a transaction on dbRead is refused')
})

t.test('a replica further behind than REPLICA_MAX_LAG_MS is bypassed without an error, then used again', async (t) => {
  await readsGoTo('replica')
  await servers.replica.query('STOP SLAVE SQL_THREAD')
  const stoppedAt = Date.now()
  // The app's heartbeat keeps writing on the primary every 200 ms; the replica now misses them.
  const titles = await readThroughout(readsGoTo('primary'))
  t.comment(`bypassed ${Date.now() - stoppedAt} ms after STOP SLAVE SQL_THREAD`)
  t.match(app.replicaStatus(), { target: 'primary', reason: /behind/ }, `bypassed: ${app.replicaStatus().reason}`)
  t.ok(app.replicaStatus().lagMs! > MAX_LAG_MS)
  t.notOk(titles.some((title) => title.startsWith('status')), `${titles.length} reads while the lag grew, all answered`)
  t.same(servedBy(await readTitles(20)), new Set(['primary']), 'reads come from the primary while the replica lags')

  await servers.replica.query('START SLAVE SQL_THREAD')
  const resumedAt = Date.now()
  await readsGoTo('replica')
  t.comment(`reads back on the replica ${Date.now() - resumedAt} ms after START SLAVE SQL_THREAD`)
  t.same(servedBy(await readTitles(20)), new Set(['replica']), 'back on the replica once it caught up')
})

t.test('a stopped replica is bypassed without an error, and used again once it is back', async (t) => {
  await readsGoTo('replica')
  const killedAt = Date.now()
  const stopped = servers.replica.stop('SIGKILL')
  const titles = await readThroughout(stopped.then(() => readsGoTo('primary')))
  t.comment(`bypassed ${Date.now() - killedAt} ms after kill -9 of the replica`)
  t.match(app.replicaStatus(), { target: 'primary', reason: /unavailable|failed/ }, `bypassed: ${app.replicaStatus().reason}`)
  t.notOk(titles.some((title) => title.startsWith('status')), `${titles.length} reads while it went down, all answered`)
  t.same(servedBy(await readTitles(20)), new Set(['primary']))

  await servers.replica.restart()
  const restartedAt = Date.now()
  await readsGoTo('replica', 30_000)
  t.comment(`reads back on the replica ${Date.now() - restartedAt} ms after the restarted replica answered`)
  t.same(servedBy(await readTitles(20)), new Set(['replica']), 'back on the replica after its restart')
  await assertInvariants(t, app.db)
  t.comment(`REPLICA_MAX_LAG_MS ${config.REPLICA_MAX_LAG_MS}, last lag ${app.replicaStatus().lagMs} ms`)
})

t.test('the replica lag and where reads go are metrics', async (t) => {
  await readsGoTo('replica')
  const metrics = (await send(base, 'GET', '/metrics')).body as string
  t.match(metrics, /^seatrush_replica_in_use 1$/m)
  t.match(metrics, /^seatrush_replica_lag_seconds [0-9.e-]+$/m)
})
