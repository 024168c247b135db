import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { OPEN_QUEUE, activeToken, joinQueue } from './helpers/queue.js'
import { ledgerMismatches } from './helpers/invariants.js'
import { bearer, send } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

t.test('one user books a seat end to end through HTTP', async (t) => {
  const { app, db, config } = await buildTestApp(t, { ...OPEN_QUEUE, SEED_POINTS: 120_000, SEAT_PRICE: 50_000 })
  const base = await listen(app)
  const userId = 11

  const joined = await joinQueue(base, userId, { body: { '@class': 'queueReq' } })
  t.equal(joined.status, 200)
  t.match(joined.body, { token: String, status: /^(WAITING|ACTIVE)$/, position: Number, etaSeconds: Number })
  const token = await activeToken(base, userId)
  t.same((await send(base, 'GET', '/concert/wait', { headers: bearer(token) })).body, { userId, status: 'ACTIVE', concertId: 1, position: 0, etaSeconds: 0 })

  const concert = await send(base, 'GET', '/concert/1')
  t.match(concert.body, { concertId: 1, title: 'Seatrush Live', artist: 'The Queue', venue: 'Main Hall', saleOpensAt: String })
  t.ok(Date.parse(concert.body.saleOpensAt) <= Date.now(), 'the seeded sale is open')
  const options = await send(base, 'GET', '/concerts/1')
  t.equal(options.body.length, config.SEED_DETAILS)
  t.match(options.body[0], { concertDetailId: Number, date: String, price: 50_000, totalSeats: 50, availableSeats: 50 })

  const days = await send(base, 'GET', '/concert/reservation/days/1', { headers: bearer(token) })
  t.equal(days.status, 200)
  t.equal(days.body.length, config.SEED_DETAILS)
  const detailId: number = days.body[0].concertDetailId

  const seats = await send(base, 'GET', `/concert/seats/${detailId}`, { headers: { authorization: token } })
  t.equal(seats.status, 200, 'a bare token works as well as Bearer')
  t.equal(seats.body.length, 50)
  t.same(seats.body[6], { seatNo: 7, status: 'AVAILABLE' })

  const seat = { userId, concertDetailId: detailId, seatNo: 7, '@class': 'concertSeat' }
  const hold = await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })
  t.equal(hold.status, 200)
  t.match(hold.body, { reservationId: Number, concertDetailId: detailId, seatNo: 7, price: 50_000, heldUntil: String })
  const heldFor = Date.parse(hold.body.heldUntil) - Date.now()
  t.ok(heldFor > config.HOLD_TTL_MS - 60_000 && heldFor <= config.HOLD_TTL_MS + 5_000, 'held for about HOLD_TTL_MS')
  const again = await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })
  t.same(again.body, hold.body, 'holding a seat you hold answers the same hold')

  const seatMap = await send(base, 'GET', `/concert/seats/${detailId}`, { headers: bearer(token) })
  t.same(seatMap.body[6], { seatNo: 7, status: 'HELD' })

  const paid = await send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'pay-11' } })
  t.equal(paid.status, 200)
  t.same(paid.body, { reservationId: hold.body.reservationId, paymentId: paid.body.paymentId, amount: 50_000, point: 70_000 })

  const retry = await send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'pay-11' } })
  t.same(retry.body, paid.body, 'a retry with the same key answers the first payment')
  t.equal(retry.status, 200)

  t.same((await send(base, 'GET', `/point/${userId}`)).body, { userId, point: 70_000 })
  const seatRow = await db.selectFrom('seats').selectAll().where('concert_detail_id', '=', detailId).where('seat_no', '=', 7).executeTakeFirstOrThrow()
  t.match(seatRow, { status: 'SOLD', user_id: userId, reservation_id: hold.body.reservationId })
  const reservation = await db.selectFrom('reservations').selectAll().where('id', '=', hold.body.reservationId).executeTakeFirstOrThrow()
  t.match(reservation, { status: 'CONFIRMED', user_id: userId, price: 50_000 })
  t.ok(reservation.confirmed_at)
  const payments = await db.selectFrom('payments').selectAll().where('user_id', '=', userId).execute()
  t.equal(payments.length, 1, 'one payment row despite the retry')
  t.match(payments[0], { id: paid.body.paymentId, reservation_id: hold.body.reservationId, amount: 50_000 })
  const history = await db.selectFrom('point_history').selectAll().where('user_id', '=', userId).execute()
  t.equal(history.length, 1)
  t.match(history[0], { kind: 'PAYMENT', amount: -50_000, balance_after: 70_000, reservation_id: hold.body.reservationId })
  t.same(await ledgerMismatches(db), [])

  const standing = await send(base, 'GET', '/concert/wait', { headers: bearer(token) })
  t.equal(standing.status, 404, 'paying released the queue slot')
  t.equal(standing.body.code, 'NOT_IN_QUEUE')
  const afterwards = await send(base, 'GET', `/concert/seats/${detailId}`, { headers: bearer(token) })
  t.equal(afterwards.status, 403, 'the token no longer opens the booking pages')
  t.equal(afterwards.body.code, 'NOT_IN_QUEUE')

  const availableSeats = async (): Promise<number> =>
    (await send(base, 'GET', '/concerts/1')).body.find((o: { concertDetailId: number }) => o.concertDetailId === detailId).availableSeats
  const cached = await availableSeats()
  t.ok(cached === 49 || cached === 50, 'availability honest within the cache bound')
  const fresh = await waitFor('the cached availability to change', async () => {
    const available = await availableSeats()
    return available !== 50 && available
  }, { timeoutMs: config.CONCERT_CACHE_MS + 2000 })
  t.equal(fresh, 49, 'after CONCERT_CACHE_MS the sold seat is counted')
})

t.test('unknown concerts, options, seats, users and routes are 404 with their code; malformed ids and bodies are 400', async (t) => {
  const { app } = await buildTestApp(t, OPEN_QUEUE)
  const base = await listen(app)
  const token = await activeToken(base, 3)

  for (const [path, code] of [
    ['/concert/999', 'CONCERT_NOT_FOUND'],
    ['/concerts/999', 'CONCERT_NOT_FOUND'],
  ] as const) {
    const res = await send(base, 'GET', path)
    t.equal(res.status, 404, path)
    t.same(res.body, { statusCode: 404, error: 'Not Found', message: 'Concert 999 not found', code })
  }
  t.equal((await send(base, 'GET', '/concert/reservation/days/999', { headers: bearer(token) })).body.code, 'CONCERT_NOT_FOUND')
  const noDetail = await send(base, 'GET', '/concert/seats/999', { headers: bearer(token) })
  t.equal(noDetail.status, 404)
  t.equal(noDetail.body.code, 'CONCERT_DETAIL_NOT_FOUND')
  for (const path of ['/concert/0', '/concerts/abc', '/concert/-3', '/concerts/1.5', '/concert/12345678901234']) {
    t.equal((await send(base, 'GET', path)).status, 400, path)
  }
  const missingSeat = await send(base, 'PATCH', '/concert/seat', { body: { userId: 3, concertDetailId: 1, seatNo: 51 }, headers: bearer(token) })
  t.equal(missingSeat.status, 404)
  t.equal(missingSeat.body.code, 'SEAT_NOT_FOUND')
  const badBody = await send(base, 'PATCH', '/concert/seat', { body: { userId: 3, concertDetailId: 1, seatNo: '7' }, headers: bearer(token) })
  t.equal(badBody.status, 400)
  const unknownUser = await joinQueue(base, 99_999)
  t.equal(unknownUser.status, 404)
  t.equal(unknownUser.body.code, 'USER_NOT_FOUND')
  const route = await send(base, 'GET', '/no/such/route')
  t.equal(route.status, 404)
  t.equal(route.body.code, 'ROUTE_NOT_FOUND')
})

t.test('the OpenAPI document lists every route', async (t) => {
  const { app } = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const paths = Object.keys(res.json().paths)
  for (const path of [
    '/point/{userId}',
    '/point',
    '/concert/{concertId}',
    '/concerts/{concertId}',
    '/concert/wait',
    '/concert/reservation/days/{concertId}',
    '/concert/seats/{concertDetailId}',
    '/concert/seat',
    '/concert/reservation/days',
    '/health',
  ]) {
    t.ok(paths.includes(path), path)
  }
  const ui = await app.inject({ method: 'GET', url: '/docs' })
  t.equal(ui.statusCode, 200, 'the UI is served')
  t.match(ui.headers['content-type'], /^text\/html/)
})
