import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AppError } from '../plugins/errors.js'
import { createConcertRepository } from './repository.js'
import { createTtlCache } from './ttl-cache.js'
import { Concert, ConcertOption, SeatView, bookableDaysSchema, concertSchema, optionsSchema, seatsSchema } from './schemas.js'

const concertRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Concert)
  app.addSchema(ConcertOption)
  app.addSchema(SeatView)
  const concerts = createConcertRepository(app.db)
  // Browsing is the rush's hottest read; a short cache bounds staleness to CONCERT_CACHE_MS.
  const cachedConcert = createTtlCache<number, Awaited<ReturnType<typeof concerts.concert>>>(app.config.CONCERT_CACHE_MS)
  const cachedOptions = createTtlCache<number, Awaited<ReturnType<typeof concerts.options>>>(app.config.CONCERT_CACHE_MS)

  const notFound = (concertId: number) => new AppError(404, 'CONCERT_NOT_FOUND', `Concert ${concertId} not found`)

  app.get('/concert/:concertId', { schema: concertSchema }, async (request) => {
    const { concertId } = request.params
    const concert = await cachedConcert(concertId, () => concerts.concert(concertId))
    if (!concert) throw notFound(concertId)
    return concert
  })

  app.get('/concerts/:concertId', { schema: optionsSchema }, async (request) => {
    const { concertId } = request.params
    const options = await cachedOptions(concertId, () => concerts.options(concertId))
    if (!options) throw notFound(concertId)
    return options
  })

  app.get('/concert/reservation/days/:concertId', { schema: bookableDaysSchema, preHandler: app.requireActive }, async (request) => {
    const { concertId } = request.params
    // Live counts: the active user is about to pick a day, so no cache here.
    const options = await concerts.options(concertId)
    if (!options) throw notFound(concertId)
    const now = Date.now()
    return options.filter((option) => option.availableSeats > 0 && Date.parse(option.date) > now)
  })

  app.get('/concert/seats/:concertDetailId', { schema: seatsSchema, preHandler: app.requireActive }, async (request) => {
    const { concertDetailId } = request.params
    const seats = await concerts.seats(concertDetailId)
    if (!seats) throw new AppError(404, 'CONCERT_DETAIL_NOT_FOUND', `Concert detail ${concertDetailId} not found`)
    return seats
  })
}

export default concertRoutes
