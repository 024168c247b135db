import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { assertSameUser } from '../plugins/auth.js'
import { perUserRateLimit } from '../plugins/rate-limit.js'
import { createReservationRepository } from './repository.js'
import { Hold, Payment, holdSchema, paySchema, type SeatRef } from './schemas.js'

const reservationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Hold)
  app.addSchema(Payment)
  const reservations = createReservationRepository(app.db)

  app.onAdmissionTick(async () => {
    const freed = await reservations.sweepExpiredHolds()
    if (freed > 0) app.log.info({ freed }, 'expired holds released')
  })

  // Holding and paying need the caller active in the queue of the concert the seat belongs to.
  const activeInSeatsConcert = app.requireActiveIn((request) => app.concertOfDetail((request.body as SeatRef).concertDetailId))

  app.patch('/concert/seat', { schema: holdSchema, preHandler: activeInSeatsConcert }, async (request) => {
    const { userId, concertDetailId, seatNo } = request.body
    assertSameUser(request, userId)
    const hold = await reservations.hold({ userId, concertDetailId, seatNo }, app.config.HOLD_TTL_MS)
    request.log.info({ userId, concertDetailId, seatNo, reservationId: hold.reservationId }, 'seat held')
    app.metrics.holds.inc()
    return hold
  })

  const payLimit = perUserRateLimit(app.config.RATE_LIMIT_PAY_PER_MIN)
  app.post('/concert/reservation/days', { schema: paySchema, preHandler: app.authenticate, config: { rateLimit: payLimit } }, async (request) => {
    const { userId, concertDetailId, seatNo } = request.body
    assertSameUser(request, userId)
    const ref = { userId, concertDetailId, seatNo }
    const call = { scope: `pay:${userId}`, key: request.headers['idempotency-key'], request: ref }
    // A retry after success must get the first answer, though paying already gave up the slot.
    const replay = await app.storedResponse<Payment>(call)
    if (replay) return replay
    const concertId = await app.concertOfDetail(concertDetailId)
    await app.assertActive(request, concertId)
    // A concurrent retry with the same key gets the first answer without paying: count only ours.
    let paid = false
    const payment = await app.idempotent(call, async (trx) => {
      const result = await reservations.pay(trx, ref)
      paid = true
      return result
    })
    if (paid) app.metrics.payments.inc()
    request.log.info({ ...ref, ...payment }, 'reservation paid')
    // The booking is done: free the slot so the next user in line can be admitted.
    await app.queue.leave(userId, concertId).catch((error) => request.log.warn({ err: error, userId }, 'could not release queue slot'))
    return payment
  })
}

export default reservationRoutes
