import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { OPEN_QUEUE, activeToken, activeTokens } from './helpers/queue.js'
import { ledgerMismatches } from './helpers/invariants.js'
import { bearer, send } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

t.test('seat and payment invariants under concurrent requests', async (t) => {
  const { app, db } = await buildTestApp(t, { ...OPEN_QUEUE, SEED_USERS: 150, SEED_POINTS: 100_000, SEAT_PRICE: 60_000 })
  const base = await listen(app)
  const users = range(1, 100)
  const tokens = await activeTokens(base, users)
  const as = (userId: number) => bearer(tokens[userId - 1]!)
  const seatRow = (concertDetailId: number, seatNo: number) =>
    db.selectFrom('seats').selectAll().where('concert_detail_id', '=', concertDetailId).where('seat_no', '=', seatNo).executeTakeFirstOrThrow()

  t.test('100 users race for one seat: exactly one wins, 99 get 409, one hold row', async (t) => {
    const responses = await Promise.all(
      users.map((userId) => send(base, 'PATCH', '/concert/seat', { body: { userId, concertDetailId: 1, seatNo: 1 }, headers: as(userId) })),
    )
    const winners = responses.filter((r) => r.status === 200)
    t.equal(winners.length, 1)
    t.equal(responses.filter((r) => r.status === 409 && r.body.code === 'SEAT_TAKEN').length, 99)
    const holds = await db.selectFrom('reservations').selectAll().where('concert_detail_id', '=', 1).where('seat_no', '=', 1).execute()
    t.equal(holds.length, 1)
    t.equal(holds[0]!.id, winners[0]!.body.reservationId)
    t.match(await seatRow(1, 1), { status: 'HELD', user_id: holds[0]!.user_id, reservation_id: holds[0]!.id })
  })

  t.test("paying for a seat someone else holds is 409 and changes nothing (the report's scenario 5)", async (t) => {
    const holder = (await seatRow(1, 1)).user_id!
    const others = users.filter((u) => u !== holder).slice(0, 30)
    const before = await db.selectFrom('users').select(['id', 'point']).where('id', 'in', others).orderBy('id').execute()
    const responses = await Promise.all(
      others.map((userId) => send(base, 'POST', '/concert/reservation/days', { body: { userId, concertDetailId: 1, seatNo: 1 }, headers: as(userId) })),
    )
    t.same([...new Set(responses.map((r) => `${r.status} ${r.body.code}`))], ['409 HOLD_NOT_FOUND'])
    t.same(await db.selectFrom('users').select(['id', 'point']).where('id', 'in', others).orderBy('id').execute(), before, 'balances unchanged')
    t.equal((await db.selectFrom('payments').selectAll().execute()).length, 0, 'no payment row')
    t.match(await seatRow(1, 1), { status: 'HELD', user_id: holder })
  })

  t.test('a user with points for one seat pays for two held seats at once: one succeeds, balance >= 0', async (t) => {
    const userId = 101
    const token = await activeToken(base, userId)
    for (const seatNo of [2, 3]) {
      t.equal((await send(base, 'PATCH', '/concert/seat', { body: { userId, concertDetailId: 2, seatNo }, headers: bearer(token) })).status, 200)
    }
    const results = await Promise.all(
      [2, 3].map((seatNo) => send(base, 'POST', '/concert/reservation/days', { body: { userId, concertDetailId: 2, seatNo }, headers: bearer(token) })),
    )
    t.same(results.map((r) => r.status).sort(), [200, 402])
    t.equal(results.find((r) => r.status === 402)!.body.code, 'INSUFFICIENT_POINTS')
    t.same((await send(base, 'GET', `/point/${userId}`)).body, { userId, point: 40_000 })
    const sold = await db.selectFrom('seats').select('seat_no').where('concert_detail_id', '=', 2).where('status', '=', 'SOLD').execute()
    t.equal(sold.length, 1)
  })

  t.test('50 users hold and pay for 50 different seats at once: every one sold once', async (t) => {
    const buyers = range(2, 50)
    const holds = await Promise.all(
      buyers.map((userId) => send(base, 'PATCH', '/concert/seat', { body: { userId, concertDetailId: 3, seatNo: userId - 1 }, headers: as(userId) })),
    )
    t.same([...new Set(holds.map((r) => r.status))], [200])
    const payments = await Promise.all(
      buyers.map((userId) => send(base, 'POST', '/concert/reservation/days', { body: { userId, concertDetailId: 3, seatNo: userId - 1 }, headers: as(userId) })),
    )
    t.same([...new Set(payments.map((r) => r.status))], [200])
    const rows = await db.selectFrom('payments').innerJoin('reservations', 'reservations.id', 'payments.reservation_id').select(['reservations.seat_no']).where('reservations.concert_detail_id', '=', 3).execute()
    t.equal(rows.length, 50)
    t.equal(new Set(rows.map((r) => r.seat_no)).size, 50)
  })

  t.test('50 concurrent retries of one payment with one Idempotency-Key pay once', async (t) => {
    const userId = 102
    const token = await activeToken(base, userId)
    const seat = { userId, concertDetailId: 4, seatNo: 10 }
    t.equal((await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })).status, 200)
    const responses = await Promise.all(
      range(0, 50).map(() => send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'pay-once' } })),
    )
    t.same([...new Set(responses.map((r) => r.status))], [200])
    t.equal(new Set(responses.map((r) => r.body.paymentId)).size, 1)
    t.equal((await db.selectFrom('payments').selectAll().where('user_id', '=', userId).execute()).length, 1)
    t.same((await send(base, 'GET', `/point/${userId}`)).body, { userId, point: 40_000 })
  })

  t.test('ledger and seat invariants hold after the races', async (t) => {
    t.same(await ledgerMismatches(db), [])
    const doubleSold = await db
      .selectFrom('reservations')
      .select(['concert_detail_id', 'seat_no', ({ fn }) => fn.countAll<number>().as('n')])
      .where('status', '=', 'CONFIRMED')
      .groupBy(['concert_detail_id', 'seat_no'])
      .having(({ fn }) => fn.countAll(), '>', 1)
      .execute()
    t.same(doubleSold, [], 'no seat confirmed twice')
    const soldWithoutPayment = await db
      .selectFrom('seats')
      .leftJoin('payments', 'payments.reservation_id', 'seats.reservation_id')
      .select('seats.id')
      .where('seats.status', '=', 'SOLD')
      .where('payments.id', 'is', null)
      .execute()
    t.same(soldWithoutPayment, [], 'every sold seat has its payment')
  })
})

t.test('an expired hold frees the seat for the next user, and its reservation becomes EXPIRED', async (t) => {
  const { app, db } = await buildTestApp(t, { ...OPEN_QUEUE, HOLD_TTL_MS: 300 })
  const base = await listen(app)
  const [first, second] = [await activeToken(base, 1), await activeToken(base, 2)]
  const seat = (userId: number) => ({ userId, concertDetailId: 1, seatNo: 5 })

  const held = await send(base, 'PATCH', '/concert/seat', { body: seat(1), headers: bearer(first) })
  t.equal(held.status, 200)
  t.equal((await send(base, 'PATCH', '/concert/seat', { body: seat(2), headers: bearer(second) })).status, 409, 'taken while held')

  const freed = await waitFor('the hold to lapse', async () => {
    const map = await send(base, 'GET', '/concert/seats/1', { headers: bearer(second) })
    return map.body[4].status !== 'HELD' && map.body[4]
  }, { timeoutMs: 5000 })
  t.ok(Date.now() >= Date.parse(held.body.heldUntil), 'not before heldUntil')
  t.same(freed, { seatNo: 5, status: 'AVAILABLE' }, 'the seat map shows it free once the hold lapsed')
  const late = await send(base, 'POST', '/concert/reservation/days', { body: seat(1), headers: bearer(first) })
  t.equal(late.status, 409)
  t.match(late.body.code, /^HOLD_(EXPIRED|NOT_FOUND)$/)
  const taken = await send(base, 'PATCH', '/concert/seat', { body: seat(2), headers: bearer(second) })
  t.equal(taken.status, 200, 'the next user takes it')
  const old = await db.selectFrom('reservations').select('status').where('id', '=', held.body.reservationId).executeTakeFirstOrThrow()
  t.equal(old.status, 'EXPIRED')

  // With no one touching it, the admitter's tick expires the reservation and frees the row.
  const other = await send(base, 'PATCH', '/concert/seat', { body: { userId: 1, concertDetailId: 1, seatNo: 6 }, headers: bearer(first) })
  t.equal(other.status, 200)
  const row = await waitFor('the sweep', async () => {
    const reservation = await db.selectFrom('reservations').select('status').where('id', '=', other.body.reservationId).executeTakeFirstOrThrow()
    return reservation.status !== 'HELD' && reservation
  }, { timeoutMs: 5000, intervalMs: 100 })
  t.equal(row.status, 'EXPIRED', 'swept without any request')
  t.match(await db.selectFrom('seats').selectAll().where('concert_detail_id', '=', 1).where('seat_no', '=', 6).executeTakeFirstOrThrow(), {
    status: 'AVAILABLE',
    user_id: null,
    reservation_id: null,
  })
})
