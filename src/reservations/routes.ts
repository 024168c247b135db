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
  const holdRules = { holdMs: app.config.HOLD_TTL_MS, maxHolds: app.config.MAX_HOLDS_PER_USER, cooldownMs: app.config.HOLD_COOLDOWN_MS }
  const holdLimit = perUserRateLimit(app.config.RATE_LIMIT_HOLD_PER_MIN)
  app.patch('/concert/seat', { schema: holdSchema, preHandler: activeInSeatsConcert, config: { rateLimit: holdLimit } }, async (request) => {
    const { userId, concertDetailId, seatNo } = request.body
    assertSameUser(request, userId)
    const hold = await reservations.hold({ userId, concertDetailId, seatNo }, holdRules)
    request.log.info({ userId, concertDetailId, seatNo, reservationId: hold.reservationId }, 'seat held')
    app.metrics.holds.inc()
    await app.seatMaps.invalidate(concertDetailId)
    return hold
  })

  const releaseSlotWhenDone = async (userId: number, concertId: number) => {
    if ((await reservations.liveHolds(userId, concertId)) === 0) await app.queue.leave(userId, concertId)
  }

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
    try {
      await app.assertActive(request, concertId)
    } catch (error) {
      // A first call with this key may have paid and given up the slot since we looked.
      const answered = await app.storedResponse<Payment>(call)
      if (answered) return answered
      throw error
    }
    // A concurrent retry with the same key gets the first answer without paying: count only ours.
    let paid = false
    const payment = await app.idempotent(call, async (trx) => {
      const result = await reservations.pay(trx, ref)
      paid = true
      return result
    })
    if (paid) app.metrics.payments.inc()
    if (paid) await app.seatMaps.invalidate(concertDetailId)
    request.log.info({ ...ref, ...payment }, 'reservation paid')
    // Once no hold in this concert is left to pay for, free the slot for the next user in line.
    await releaseSlotWhenDone(userId, concertId).catch((error) => request.log.warn({ err: error, userId }, 'could not release queue slot'))
    return payment
  })
}

export default reservationRoutes
