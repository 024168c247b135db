import t from 'tap'
import { sql } from 'kysely'
import { buildTestApp, listen } from './helpers/app.js'
import { addHall, addHallConcert, HALL_CONCERT_ID } from './helpers/halls.js'
import { bearer, send } from './helpers/http.js'
import { OPEN_QUEUE, activeTokens } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'
import { createReservationRepository, lapsedHolds } from '../src/reservations/repository.js'

const HALL_SEATS = 300_000
const LAPSING_HOLDS = 30_000
const LAPSE_SPREAD_MS = 4000
const USERS = 20
const HOLDS_PER_USER = 15

t.test('the sweeper works through lapsed holds in a large hall without holding up holds on other seats', async (t) => {
  // User 1 owns the lapsing holds; users 2.. hold free seats.
  const { app, db } = await buildTestApp(t, { ...OPEN_QUEUE, SEED_USERS: USERS + 1, MAX_HOLDS_PER_USER: HOLDS_PER_USER })
  const base = await listen(app)

  // A hall of HALL_SEATS seats, inserted by MySQL from a numbers table rather than row by row.
  await addHallConcert(db)
  const hall = await addHall(db, HALL_CONCERT_ID, 0)
  await sql`CREATE TEMPORARY TABLE digits (d INT PRIMARY KEY)`.execute(db)
  await sql`INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)`.execute(db)
  await sql`
    INSERT INTO seats (concert_detail_id, seat_no, status)
    SELECT ${hall}, n, 'AVAILABLE' FROM (
      SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d AS n
      FROM digits a, digits b, digits c, digits e, digits f, digits g
    ) numbers WHERE n <= ${HALL_SEATS}`.execute(db)
  await db.updateTable('concert_details').set({ total_seats: HALL_SEATS }).where('id', '=', hall).execute()

  // Every tenth seat is held by user 1, the holds lapsing one after another over LAPSE_SPREAD_MS,
  // so the sweeper has work all the time the other holds run.
  await sql`
    INSERT INTO reservations (user_id, concert_detail_id, seat_no, price, status, held_until)
    SELECT 1, concert_detail_id, seat_no, 50000, 'HELD', NOW(3) + INTERVAL ((seat_no DIV 10) % ${LAPSE_SPREAD_MS}) * 1000 MICROSECOND
    FROM seats WHERE concert_detail_id = ${hall} AND seat_no % 10 = 0 AND seat_no <= ${LAPSING_HOLDS * 10}`.execute(db)
  await sql`
    UPDATE seats JOIN reservations r ON r.concert_detail_id = seats.concert_detail_id AND r.seat_no = seats.seat_no
    SET seats.status = 'HELD', seats.user_id = 1, seats.held_until = r.held_until, seats.reservation_id = r.id
    WHERE seats.concert_detail_id = ${hall}`.execute(db)

  const compiled = lapsedHolds(db, 500).compile()
  const explained = await db.executeQuery<{ key: string | null }>({ ...compiled, sql: `EXPLAIN ${compiled.sql}` })
  t.same(
    explained.rows.map((row) => row.key),
    ['seats_status_held_until'],
    'the sweeper finds lapsed holds through the index',
  )

  // The sweeper runs back to back (besides the admission tick's own runs) while users hold free
  // seats, each a different one, so no hold waits for another: InnoDB is asked all the while
  // whether any transaction on this database waits for a lock.
  const reservations = createReservationRepository(app.db)
  let holding = true
  let sweeps = 0
  let swept = 0
  const sweeper = (async () => {
    while (holding) {
      swept += await reservations.sweepExpiredHolds()
      sweeps++
    }
  })()
  let lockWaits = 0
  let lockChecks = 0
  const lockWatch = (async () => {
    while (holding) {
      const { rows } = await sql<{ n: number }>`
        SELECT COUNT(*) AS n FROM information_schema.INNODB_LOCK_WAITS w
        JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.requested_lock_id
        WHERE l.lock_table LIKE CONCAT('\`', DATABASE(), '\`.%')`.execute(db)
      lockWaits = Math.max(lockWaits, Number(rows[0]!.n))
      lockChecks++
    }
  })()

  const users = Array.from({ length: USERS }, (_, i) => i + 2)
  const tokens = await activeTokens(base, users, { concertId: HALL_CONCERT_ID })
  const latencies: number[] = []
  const failures: string[] = []
  await Promise.all(
    users.map(async (userId) => {
      for (let i = 0; i < HOLDS_PER_USER; i++) {
        // Free seats spread over the hall, a different one each time, never one of the lapsing
        // ones (multiples of 10); 97 is prime to HALL_SEATS / 10, so no two holds meet.
        const seatNo = 1 + 10 * ((((userId - 2) * HOLDS_PER_USER + i) * 97) % (HALL_SEATS / 10)) + (userId % 9)
        const started = performance.now()
        const res = await send(base, 'PATCH', '/concert/seat', { body: { userId, concertDetailId: hall, seatNo }, headers: bearer(tokens[userId - 2]!) })
        latencies.push(performance.now() - started)
        if (res.status !== 200) failures.push(`${res.status} ${res.body?.code}`)
      }
    }),
  )
  holding = false
  await Promise.all([sweeper, lockWatch])

  const { lockWaitS } = (await sql<{ lockWaitS: number }>`SELECT @@innodb_lock_wait_timeout AS lockWaitS`.execute(db)).rows[0]!
  latencies.sort((a, b) => a - b)
  const p99 = latencies[Math.floor(latencies.length * 0.99)]!
  t.same(failures, [], 'no hold failed or was shed')
  t.equal(lockWaits, 0, `no transaction waited for a lock (${lockChecks} checks)`)
  t.ok(p99 < 2000, `holds beside the sweeper stay fast: p99 ${Math.round(p99)} ms, lock-wait timeout ${lockWaitS} s`)
  t.ok(sweeps > 1 && swept > 0, `the sweeper ran ${sweeps} times and freed ${swept} seats meanwhile`)

  // Every hold lapses in the end and the sweeper frees them all, each with its reservation.
  await waitFor(
    'every lapsed hold to be swept',
    async () => {
      await reservations.sweepExpiredHolds()
      const { n } = await db.selectFrom('seats').select(({ fn }) => fn.countAll<number>().as('n')).where('user_id', '=', 1).executeTakeFirstOrThrow()
      return Number(n) === 0
    },
    { timeoutMs: LAPSE_SPREAD_MS + 20_000, intervalMs: 200 },
  )
  const stranded = await db
    .selectFrom('seats')
    .innerJoin('reservations', 'reservations.id', 'seats.reservation_id')
    .select(({ fn }) => fn.countAll<number>().as('n'))
    .where('seats.status', '=', 'HELD')
    .where('reservations.status', '=', 'EXPIRED')
    .executeTakeFirstOrThrow()
  t.equal(Number(stranded.n), 0, 'no seat stays HELD pointing at an EXPIRED reservation')
  const { n: held } = await db
    .selectFrom('reservations')
    .select(({ fn }) => fn.countAll<number>().as('n'))
    .where('user_id', '=', 1)
    .where('status', '=', 'HELD')
    .executeTakeFirstOrThrow()
  t.equal(Number(held), 0, 'every lapsed reservation is EXPIRED')
})
