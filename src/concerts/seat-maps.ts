import fp from 'fastify-plugin'
import { createConcertRepository } from './repository.js'
import { encodeOptions, encodeSeatMap, type EncodedBody, type EncodedSeatMap } from './encoded.js'
import { createVersionedCache } from './versioned-cache.js'

declare module 'fastify' {
  interface FastifyInstance {
    seatMaps: {
      /**
       * Tells every worker and host that seats of this option changed: call it once a hold or a
       * payment has committed. It never throws; a bump Redis refused is logged (see below).
       */
      invalidate: (concertDetailId: number) => Promise<void>
      /** Both views of the option's seat map as bytes with ETags; undefined when it does not exist. */
      seatMap: (concertDetailId: number) => Promise<EncodedSeatMap | undefined>
      /** The concert's options that still have free seats and have not started; undefined when it does not exist. */
      bookableDays: (concertId: number) => Promise<EncodedBody | undefined>
    }
  }
}

/**
 * A concert's bookable days, encoded, with the moment the list changes by itself: when a hold
 * lapses (a sold-out day frees a seat) or a listed day starts.
 */
export async function loadBookableDays(
  concerts: ReturnType<typeof createConcertRepository>,
  concertId: number,
): Promise<{ value: EncodedBody | undefined; validUntil: number | null }> {
  const { value: options, nextLapseAt } = await concerts.optionsWithLapse(concertId)
  if (!options) return { value: undefined, validUntil: null }
  const now = Date.now()
  const bookable = options.filter((option) => option.availableSeats > 0 && Date.parse(option.date) > now)
  const validUntil = Math.min(nextLapseAt ?? Infinity, ...bookable.map((option) => Date.parse(option.date)))
  return { value: encodeOptions(bookable), validUntil: Number.isFinite(validUntil) ? validUntil : null }
}

/**
 * Seat maps and bookable days, serialized once per change rather than once per request. Each
 * option and each concert has a version in one Redis hash, bumped after every hold and payment;
 * a worker serves its bytes while the version it last asked (at most SEAT_MAP_CHECK_MS before
 * the request) is the one they were built at. Lapsing holds change no version: a value expires
 * by itself when its first live hold lapses. A bump Redis refuses leaves the other workers'
 * copies for at most CONCERT_CACHE_MS, their age limit.
 */
export default fp(
  async function seatMaps(app) {
    const { config } = app
    const concerts = createConcertRepository(app.db)
    const versions = app.redisKey('seat-map-versions')
    const detailField = (concertDetailId: number) => `d:${concertDetailId}`
    const concertField = (concertId: number) => `c:${concertId}`
    const timing = { checkMs: config.SEAT_MAP_CHECK_MS, maxAgeMs: config.CONCERT_CACHE_MS }

    const seatMaps = createVersionedCache<number, EncodedSeatMap | undefined>({
      ...timing,
      version: (concertDetailId) => app.redis.hget(versions, detailField(concertDetailId)),
      async load(concertDetailId) {
        const encoded =
          (await app.serializer.seatMapBuilder(concertDetailId)) === 'worker'
            ? await app.serializer.encodedSeatMap(concertDetailId)
            : await concerts.seatMap(concertDetailId).then((seats) => seats && encodeSeatMap(concertDetailId, seats))
        return { value: encoded, validUntil: encoded?.nextLapseAt ?? null }
      },
    })

    const days = createVersionedCache<number, EncodedBody | undefined>({
      ...timing,
      version: (concertId) => app.redis.hget(versions, concertField(concertId)),
      load: (concertId) => loadBookableDays(concerts, concertId),
    })

    // Options never move to another concert, so this worker remembers each one's concert.
    const concertOf = new Map<number, number>()

    app.decorate('seatMaps', {
      async invalidate(concertDetailId: number) {
        try {
          const concertId = concertOf.get(concertDetailId) ?? (await concerts.concertOf(concertDetailId))
          if (concertId !== undefined) concertOf.set(concertDetailId, concertId)
          const bump = app.redis.multi().hincrby(versions, detailField(concertDetailId), 1)
          if (concertId !== undefined) bump.hincrby(versions, concertField(concertId), 1)
          const failed = (await bump.exec())?.find(([error]) => error)
          if (failed) throw failed[0]
        } catch (error) {
          // This worker at least stops answering from the old bytes.
          seatMaps.clear()
          days.clear()
          app.log.warn({ err: error, concertDetailId }, 'seat map version not bumped: other workers may show the old seats for CONCERT_CACHE_MS')
        }
      },
      seatMap: (concertDetailId: number) => seatMaps.get(concertDetailId),
      bookableDays: (concertId: number) => days.get(concertId),
    })
  },
  { name: 'seat-maps', dependencies: ['config', 'db', 'redis', 'serializer'] },
)
