import t from 'tap'
import { once } from 'node:events'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { parseMysqlUrl } from '../src/db/connection.js'
import { SEED_CONCERT_ID } from '../src/db/seed.js'
import { buildTestApp, listen, prepareTestData, testConfig } from './helpers/app.js'
import { OPEN_QUEUE, activeToken } from './helpers/queue.js'
import { bearer } from './helpers/http.js'
import { addHall } from './helpers/halls.js'
import { waitFor } from './helpers/wait.js'
import { encodeSeatMap, schemaSerializers } from '../src/concerts/encoded.js'
import { seatList, unpackSeats } from '../src/concerts/repository.js'

const seatMap = (app: FastifyInstance, concertDetailId: number, token: string) =>
  app.inject({ method: 'GET', url: `/concert/seats/${concertDetailId}`, headers: bearer(token) })

/** Tasks the app's pool has finished: one per seat map built off the event loop (plus its start-up check). */
const pooled = (app: FastifyInstance) => app.serializer.pool?.completed ?? 0

t.test('inline and worker answer byte-identical seat maps, holds and sales included', async (t) => {
  const config = testConfig(OPEN_QUEUE)
  const db = await prepareTestData(t, config)
  const largeHall = await addHall(db, SEED_CONCERT_ID, 6000)
  const smallHall = await addHall(db, SEED_CONCERT_ID, 30)
  const inline = await buildApp({ ...config, SERIALIZER: 'inline' }, { logger: false })
  t.teardown(() => inline.close())
  const worker = await buildApp({ ...config, SERIALIZER: 'worker' }, { logger: false })
  t.teardown(() => worker.close())
  t.equal(inline.serializer.pool, undefined, 'inline starts no threads')

  const userId = 5
  const token = await activeToken(await listen(inline), userId)
  const hold = await inline.inject({
    method: 'PATCH',
    url: '/concert/seat',
    headers: bearer(token),
    payload: { userId, concertDetailId: largeHall, seatNo: 4321 },
  })
  t.equal(hold.statusCode, 200, 'a seat of the large hall is held')
  await db.updateTable('seats').set({ status: 'SOLD', user_id: 7 }).where('concert_detail_id', '=', largeHall).where('seat_no', '=', 10).execute()
  await db
    .updateTable('seats')
    .set({ status: 'HELD', user_id: 8, held_until: sql<Date>`NOW(3) - INTERVAL 1 SECOND` })
    .where('concert_detail_id', '=', smallHall)
    .where('seat_no', '=', 3)
    .execute()

  for (const [hall, seats] of [
    [largeHall, 6000],
    [smallHall, 30],
  ] as const) {
    const before = pooled(worker)
    const [fromEventLoop, fromPool] = await Promise.all([seatMap(inline, hall, token), seatMap(worker, hall, token)])
    t.equal(pooled(worker), before + 1, `${seats} seats: the worker app built it in the pool`)
    t.equal(fromPool.statusCode, 200)
    t.equal(fromPool.headers['content-type'], fromEventLoop.headers['content-type'], `${seats} seats: same content type`)
    t.ok(fromPool.rawPayload.equals(fromEventLoop.rawPayload), `${seats} seats: same bytes (${fromPool.rawPayload.length})`)
    t.equal(fromPool.json().length, seats)
  }

  const large = (await seatMap(worker, largeHall, token)).json()
  t.same(large[4320], { seatNo: 4321, status: 'HELD' }, 'a live hold shows as held from the pool')
  t.same(large[9], { seatNo: 10, status: 'SOLD' })
  t.same(large[0], { seatNo: 1, status: 'AVAILABLE' })
  const small = (await seatMap(worker, smallHall, token)).json()
  t.same(small[2], { seatNo: 3, status: 'AVAILABLE' }, 'an expired hold shows as free from the pool')

  for (const app of [inline, worker]) {
    const missing = await seatMap(app, 999_999, token)
    t.equal(missing.statusCode, 404)
    t.equal(missing.json().code, 'CONCERT_DETAIL_NOT_FOUND', `${app.config.SERIALIZER}: unknown option`)
  }
})

t.test('auto builds seat maps of SERIALIZER_THRESHOLD_SEATS seats or more in the pool, smaller ones inline', async (t) => {
  // Kept maps live long and every request asks the version: only a bump decides when one is built again.
  const { app, db } = await buildTestApp(t, { ...OPEN_QUEUE, SERIALIZER: 'auto', SERIALIZER_THRESHOLD_SEATS: 1000, CONCERT_CACHE_MS: 60_000, SEAT_MAP_CHECK_MS: 0 })
  const atThreshold = await addHall(db, SEED_CONCERT_ID, 1000)
  const justBelow = await addHall(db, SEED_CONCERT_ID, 999)
  const token = await activeToken(await listen(app), 9)

  const builtInPool = async (concertDetailId: number) => {
    const before = pooled(app)
    const response = await seatMap(app, concertDetailId, token)
    t.equal(response.statusCode, 200)
    return pooled(app) - before === 1
  }
  t.equal(await builtInPool(1), false, 'the seeded 50 seats: event loop')
  t.equal(await builtInPool(justBelow), false, '999 seats: event loop')
  t.equal(app.serializer.pool, undefined, 'no threads started while no map needed them')
  t.equal(await builtInPool(atThreshold), true, '1000 seats: pool')
  await app.seatMaps.invalidate(justBelow)
  t.equal(await builtInPool(justBelow), false, '999 seats: still the event loop once the pool runs')
  t.equal(await builtInPool(atThreshold), false, 'unchanged: answered from the cached bytes, no task')
  await app.seatMaps.invalidate(atThreshold)
  t.equal(await builtInPool(atThreshold), true, 'changed: built again, and the cached size decides the same way again')
})

t.test('closing the app stops the pool threads and their MySQL connections', { timeout: 60_000 }, async (t) => {
  const { app, db, config } = await buildTestApp(t, { ...OPEN_QUEUE, SERIALIZER: 'worker', SERIALIZER_THREADS: 2 })
  const { database } = parseMysqlUrl(config.MYSQL_URL)
  const connections = async () => {
    const { rows } = await sql<{ n: number }>`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ${database}`.execute(db)
    return Number(rows[0]?.n)
  }
  const token = await activeToken(await listen(app), 12)
  const threads = app.serializer.pool!.threads
  t.equal(threads.length, 2, 'SERIALIZER_THREADS threads')
  // Enough concurrent maps that every thread opens its connections.
  const answers = await Promise.all(Array.from({ length: 8 }, () => seatMap(app, 1, token)))
  t.ok(answers.every((answer) => answer.statusCode === 200))
  const whileOpen = await connections()

  const exits = threads.map((thread) => once(thread, 'exit'))
  await app.close()
  await Promise.all(exits)
  t.same(threads.map((thread) => thread.threadId), [-1, -1], 'every thread exited')
  let afterClose = 0
  await waitFor('the pool\'s connections to close', async () => (afterClose = await connections()) <= 1, { timeoutMs: 2000, intervalMs: 50 })
  t.ok(whileOpen > afterClose, `connections to the database: ${whileOpen} while serving`)
  t.equal(afterClose, 1, 'only the test\'s own connection is left')
})

t.test("the seat maps' byte writers give exactly what the route schemas' serializers give", async (t) => {
  const statuses = ['AVAILABLE', 'HELD', 'SOLD'] as const
  // Seat numbers of every width from 1 to 10 digits (seat_no is an unsigned INT), 0 included, in random statuses.
  const numbers = (n: number) => Array.from({ length: n }, (_, i) => (i === 0 ? 0 : Math.min(2 ** 32 - 1, Math.floor(10 ** (i % 10) * (1 + Math.random() * 9)))))
  for (const size of [0, 1, 2, 9, 10, 1_000, 5_000]) {
    // Seat numbers are unique within an option (seats_detail_seat_no).
    const seats = [...new Set(numbers(size))].sort((a, b) => a - b).map((seatNo) => ({ seatNo, status: statuses[Math.floor(Math.random() * 3)]! }))
    const concertDetailId = 1 + size
    const packed = seats.map((seat) => `${seat.seatNo}${seat.status[0]}`).join('')
    t.same(unpackSeats(packed, seats.length), seatList(seats), `${size} seats: MySQL's packed string reads back whole`)
    const shuffled = seats.map((seat) => [Math.random(), seat] as const).sort(([a], [b]) => a - b).map(([, seat]) => `${seat.seatNo}${seat.status[0]}`)
    t.same(unpackSeats(shuffled.join(''), seats.length), seatList(seats), `${size} seats: in any order, read back in seat order`)
    const byStatus = statuses.flatMap((status) => seats.filter((seat) => seat.status === status)).map((seat) => `${seat.seatNo}${seat.status[0]}`)
    t.same(unpackSeats(byStatus.join(''), seats.length), seatList(seats), `${size} seats: in one run per status, as the index gives them, read back in seat order`)
    const encoded = encodeSeatMap(concertDetailId, { value: seatList(seats), nextLapseAt: null })
    t.equal(Buffer.from(encoded.full.bytes).toString('latin1'), schemaSerializers.seatMap(seats), `${size} seats: the full view`)
    const available = seats.filter((seat) => seat.status === 'AVAILABLE').map((seat) => seat.seatNo)
    t.equal(Buffer.from(encoded.available.bytes).toString('latin1'), schemaSerializers.available({ concertDetailId, totalSeats: seats.length, available }), `${size} seats: the available view`)
    t.same(structuredClone(encodeSeatMap(concertDetailId, { value: seatList(seats), nextLapseAt: 5 })), { full: encoded.full, available: encoded.available, nextLapseAt: 5 }, `${size} seats: a clone (a pool thread's answer) carries both views built`)
  }
  const unknown = encodeSeatMap(1, { value: seatList([{ seatNo: 1, status: 'LOST' as 'SOLD' }]), nextLapseAt: null })
  t.throws(() => unknown.full, /no status the schema allows/, 'a status the schema does not allow is refused, not written')
  for (const [packed, count, what] of [['1A2H3', 3, 'cut short mid-number'], ['1A2H', 3, 'cut short between seats'], ['1A2H3S4A', 3, 'longer than its count'], ['1A2X3S', 3, 'an unknown status'], ['1AH3S', 3, 'a status without a number']] as const) {
    t.throws(() => unpackSeats(packed, count), /cut short or malformed/, `a packed map ${what} is an error, never a short map`)
  }
})

t.test('a hall whose seats were added out of seat order is mapped in seat order, inline and in the pool', async (t) => {
  const config = testConfig(OPEN_QUEUE)
  const db = await prepareTestData(t, config)
  const hall = await addHall(db, SEED_CONCERT_ID, 0)
  // 3,000 seats inserted from the last to the first, so a table scan meets them backwards.
  const seatNos = Array.from({ length: 3000 }, (_, i) => 3000 - i)
  await db.insertInto('seats').values(seatNos.map((seat_no) => ({ concert_detail_id: hall, seat_no, status: 'AVAILABLE' as const }))).execute()
  await db.updateTable('concert_details').set({ total_seats: seatNos.length }).where('id', '=', hall).execute()
  await db.updateTable('seats').set({ status: 'SOLD', user_id: 7 }).where('concert_detail_id', '=', hall).where('seat_no', '=', 2999).execute()
  for (const SERIALIZER of ['inline', 'worker'] as const) {
    const app = await buildApp({ ...config, SERIALIZER }, { logger: false })
    t.teardown(() => app.close())
    const token = await activeToken(await listen(app), 5)
    const seats = (await seatMap(app, hall, token)).json() as Array<{ seatNo: number; status: string }>
    t.same(seats.map((seat) => seat.seatNo), [...seatNos].reverse(), `${SERIALIZER}: every seat once, ascending`)
    t.same(seats.filter((seat) => seat.status !== 'AVAILABLE'), [{ seatNo: 2999, status: 'SOLD' }], `${SERIALIZER}: each status stays with its seat`)
  }
})
