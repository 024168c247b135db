import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Static } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AppError } from '../plugins/errors.js'
import { createConcertRepository } from './repository.js'
import { createTtlCache } from './ttl-cache.js'
import { acceptsGzip } from './content-coding.js'
import { gzipCopy, type EncodedBody } from './encoded.js'
import {
  AvailableSeats,
  Concert,
  ConcertOption,
  ConcertParams,
  DetailParams,
  SeatView,
  bookableDaysSchema,
  concertSchema,
  optionsSchema,
  seatsSchema,
} from './schemas.js'

const concertRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Concert)
  app.addSchema(ConcertOption)
  app.addSchema(SeatView)
  app.addSchema(AvailableSeats)
  const concerts = createConcertRepository(app.dbRead)
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

  // Pollers send back the ETag they hold: an unchanged answer costs a 304 and no body. Clients
  // that accept gzip get the copy made with the body, under its own ETag.
  const sendEncoded = (request: FastifyRequest, reply: FastifyReply, body: EncodedBody) => {
    const gzip = acceptsGzip(request.headers['accept-encoding']) ? gzipCopy(body) : undefined
    const chosen = gzip ?? body
    reply.header('vary', 'accept-encoding').header('cache-control', 'private, no-cache')
    // A poller holding the identity copy holds the current content too: its 304 names the ETag it
    // sent, so it keeps that copy. One holding the gzip copy is answered 304 only while gzip is acceptable.
    const ifNoneMatch = request.headers['if-none-match']
    const held = !ifNoneMatch ? undefined : sameEtag(ifNoneMatch, chosen.etag) ? chosen : gzip && sameEtag(ifNoneMatch, body.etag) ? body : undefined
    if (held) return reply.header('etag', held.etag).code(304).send()
    reply.header('etag', chosen.etag)
    if (gzip) reply.header('content-encoding', 'gzip')
    const { bytes } = chosen
    return reply.type('application/json; charset=utf-8').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }

  // The booking pages need the caller active in the queue of the concert they show; they only
  // read, so an ACTIVE answer is reused for ACTIVE_READ_MEMO_MS.
  const activeInConcert = app.requireActiveToRead(async (request) => {
    const { concertId } = request.params as Static<typeof ConcertParams>
    if (!(await app.queueCatalog.knowsConcert(concertId))) throw notFound(concertId)
    return concertId
  })
  const activeInDetailsConcert = app.requireActiveToRead((request: FastifyRequest) =>
    app.concertOfDetail((request.params as Static<typeof DetailParams>).concertDetailId),
  )

  app.get('/concert/reservation/days/:concertId', { schema: bookableDaysSchema, preHandler: activeInConcert }, async (request, reply) => {
    const { concertId } = request.params
    const days = await app.seatMaps.bookableDays(concertId)
    if (!days) throw notFound(concertId)
    return sendEncoded(request, reply, days)
  })

  app.get('/concert/seats/:concertDetailId', { schema: seatsSchema, preHandler: activeInDetailsConcert }, async (request, reply) => {
    const { concertDetailId } = request.params
    const seatMap = await app.seatMaps.seatMap(concertDetailId)
    if (!seatMap) throw detailNotFound(concertDetailId)
    return sendEncoded(request, reply, seatMap[request.query.view])
  })
}

/** If-None-Match names this ETag (or is `*`); weak forms match too, as RFC 9110 asks for GET. */
function sameEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false
  return ifNoneMatch.split(',').some((candidate) => {
    const tag = candidate.trim()
    return tag === '*' || tag === etag || tag === `W/${etag}`
  })
}

export default concertRoutes
