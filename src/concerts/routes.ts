import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { AppError } from '../plugins/errors.js'
import { createConcertRepository } from './repository.js'
import { createTtlCache } from './ttl-cache.js'
import { Concert, ConcertOption, ConcertParams, DetailParams, SeatView, bookableDaysSchema, concertSchema, optionsSchema, seatsSchema } from './schemas.js'

const concertRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Concert)
  app.addSchema(ConcertOption)
  app.addSchema(SeatView)
  const concerts = createConcertRepository(app.db)
  // Browsing is the rush's hottest read; a short cache bounds staleness to CONCERT_CACHE_MS.
  const cachedConcert = createTtlCache<number, Awaited<ReturnType<typeof concerts.concert>>>(app.config.CONCERT_CACHE_MS)
  const cachedOptions = createTtlCache<number, Awaited<ReturnType<typeof concerts.options>>>(app.config.CONCERT_CACHE_MS)

  const notFound = (concertId: number) => new AppError(404, 'CONCERT_NOT_FOUND', `Concert ${concertId} not found`)
  const detailNotFound = (concertDetailId: number) =>
    new AppError(404, 'CONCERT_DETAIL_NOT_FOUND', `Concert detail ${concertDetailId} not found`)

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

  // The booking pages need the caller active in the queue of the concert they show.
  const activeInConcert = app.requireActiveIn(async (request) => {
    const { concertId } = request.params as Static<typeof ConcertParams>
    if (!(await app.queueCatalog.knowsConcert(concertId))) throw notFound(concertId)
    return concertId
  })
  const activeInDetailsConcert = app.requireActiveIn((request: FastifyRequest) =>
    app.concertOfDetail((request.params as Static<typeof DetailParams>).concertDetailId),
  )

  app.get('/concert/reservation/days/:concertId', { schema: bookableDaysSchema, preHandler: activeInConcert }, async (request) => {
    const { concertId } = request.params
    // Live counts: the active user is about to pick a day, so no cache here.
    const options = await concerts.options(concertId)
    if (!options) throw notFound(concertId)
    const now = Date.now()
    return options.filter((option) => option.availableSeats > 0 && Date.parse(option.date) > now)
  })

  // The reply may be the pool's JSON bytes, sent as they are, so the schema's reply type is widened.
  type SeatMapRoute = { Params: Static<typeof DetailParams>; Reply: SeatView[] | Buffer }
  app.get<SeatMapRoute>('/concert/seats/:concertDetailId', { schema: seatsSchema, preHandler: activeInDetailsConcert }, async (request, reply) => {
    const { concertDetailId } = request.params
    if ((await app.serializer.seatMapBuilder(concertDetailId)) === 'worker') {
      // Already serialized with this route's response schema, off the event loop (SERIALIZER).
      const json = await app.serializer.seatMapJson(concertDetailId)
      if (!json) throw detailNotFound(concertDetailId)
      return reply.type('application/json; charset=utf-8').send(json)
    }
    const seats = await concerts.seats(concertDetailId)
    if (!seats) throw detailNotFound(concertDetailId)
    return seats
  })
}

export default concertRoutes
