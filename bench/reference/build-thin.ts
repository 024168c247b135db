import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { createSigner, createVerifier } from 'fast-jwt'
import { Redis } from 'ioredis'
import type { Config } from '../../src/config.js'
import { acceptsGzip } from '../../src/concerts/content-coding.js'
import { encodeSeatMap, gzipCopy, type EncodedBody } from '../../src/concerts/encoded.js'
import { createConcertRepository } from '../../src/concerts/repository.js'
import { loadBookableDays } from '../../src/concerts/seat-maps.js'
import { createTtlCache } from '../../src/concerts/ttl-cache.js'
import { createVersionedCache } from '../../src/concerts/versioned-cache.js'
import { createDb } from '../../src/db/connection.js'
import { SEED_CONCERT_ID } from '../../src/db/seed.js'
import { inTransaction } from '../../src/db/transaction.js'
import { BARE_USER_ID, QUEUE_AUDIENCE, bearerCredential } from '../../src/plugins/auth.js'
import { AppError } from '../../src/plugins/errors.js'
import { redisKey } from '../../src/plugins/redis.js'
import { createPointRepository } from '../../src/points/repository.js'
import { createCatalog } from '../../src/queue/catalog.js'
import { createQueue, defineQueueCommands, queueSettings } from '../../src/queue/queue.js'
import { createReservationRepository } from '../../src/reservations/repository.js'

/**
 * The floor for the app's layers: every endpoint as one bare Fastify handler calling the app's
 * repositories (so the same SQL, by construction) and the app's Lua scripts, verifying the same
 * tokens with the same library (fast-jwt), with the same caches, the same seat-map versions and
 * the same admitter and sweeper. What it leaves out is the app's structure: plugins, schemas,
 * validation, hooks, metrics, logging, rate limits, shedding. test/thin-reference.test.ts checks
 * that both send the same statements for a whole booking.
 */
export async function buildThin(config: Config): Promise<FastifyInstance> {
  if (config.AUTH_MODE !== 'token' || !config.TOKEN_SECRET || !config.IDENTITY_JWT_SECRET) {
    throw new Error('the thin reference runs in AUTH_MODE=token with TOKEN_SECRET and IDENTITY_JWT_SECRET set')
  }
  const db = createDb(config.MYSQL_URL, config.MYSQL_POOL_SIZE)
  // Auto-pipelined as the app's client is: the comparison is of the work, not of the syscalls.
  const redis = new Redis(config.REDIS_URL, { enableOfflineQueue: true, maxRetriesPerRequest: 1, enableAutoPipelining: true })
  defineQueueCommands(redis)
  const prefix = config.REDIS_KEY_PREFIX
  const queue = createQueue(redis, prefix, queueSettings(config))
  const catalog = createCatalog(redis, db, prefix)
  const concerts = createConcertRepository(db)
  const points = createPointRepository(db)
  const reservations = createReservationRepository(db)
  const holdRules = { holdMs: config.HOLD_TTL_MS, maxHolds: config.MAX_HOLDS_PER_USER, cooldownMs: config.HOLD_COOLDOWN_MS }

  // Tokens as the app's auth and identity plugins make and check them (@fastify/jwt is fast-jwt).
  const signQueueToken = createSigner({ key: config.TOKEN_SECRET, algorithm: 'HS256', expiresIn: config.TOKEN_TTL_S * 1000, aud: QUEUE_AUDIENCE })
  const verifyQueueToken = createVerifier({ key: config.TOKEN_SECRET, algorithms: ['HS256'], allowedAud: QUEUE_AUDIENCE, requiredClaims: ['aud'] })
  const verifyIdentity = createVerifier({ key: config.IDENTITY_JWT_SECRET, algorithms: ['HS256'], requiredClaims: ['sub'], cache: 1000 })
  const refuse = (statusCode: number, code: string) => new AppError(statusCode, code, code)

  const userOf = (claims: { sub?: unknown }) => {
    if (typeof claims.sub !== 'string' || !BARE_USER_ID.test(claims.sub)) throw refuse(401, 'TOKEN_INVALID')
    return Number(claims.sub)
  }
  const caller = (request: FastifyRequest): { userId: number; concertId: number } => {
    const token = bearerCredential(request)
    if (!token) throw refuse(401, 'TOKEN_INVALID')
    let claims: { sub?: unknown; cid?: unknown }
    try {
      claims = verifyQueueToken(token)
    } catch {
      throw refuse(401, 'TOKEN_INVALID')
    }
    const concertId = claims.cid ?? SEED_CONCERT_ID
    if (!Number.isSafeInteger(concertId) || (concertId as number) < 1) throw refuse(401, 'TOKEN_INVALID')
    return { userId: userOf(claims), concertId: concertId as number }
  }
  const identity = async (request: FastifyRequest, userId: number) => {
    const token = bearerCredential(request)
    if (!token) throw refuse(401, 'IDENTITY_MISSING')
    let claims: { sub?: unknown; aud?: unknown }
    try {
      claims = await verifyIdentity(token)
    } catch {
      throw refuse(401, 'IDENTITY_INVALID')
    }
    if ([claims.aud].flat().includes(QUEUE_AUDIENCE) || userOf(claims) !== userId) throw refuse(403, 'IDENTITY_MISMATCH')
  }
  const assertActive = async (userId: number, tokenConcert: number, concertId: number) => {
    if (tokenConcert !== concertId) throw refuse(403, 'WRONG_CONCERT')
    const { status } = await queue.verifyAndTouch(userId, concertId)
    if (status !== 'ACTIVE') throw refuse(403, status === 'NONE' ? 'NOT_IN_QUEUE' : 'NOT_ACTIVE')
  }

  // Which concert guards a detail, remembered for good, as the app's detail-concerts plugin does.
  const guardedBy = new Map<number, number>()
  const concertOfDetail = async (concertDetailId: number) => {
    const known = guardedBy.get(concertDetailId)
    if (known !== undefined) return known
    const row = await db.selectFrom('concert_details').select('concert_id').where('id', '=', concertDetailId).executeTakeFirst()
    if (!row) throw refuse(404, 'CONCERT_DETAIL_NOT_FOUND')
    guardedBy.set(concertDetailId, row.concert_id)
    return row.concert_id
  }

  const id = (value: unknown): number => {
    if (!Number.isInteger(value) || (value as number) < 1) throw refuse(400, 'VALIDATION_FAILED')
    return value as number
  }
  const param = (request: FastifyRequest, name: string) => {
    const text = (request.params as Record<string, string>)[name] ?? ''
    return id(/^[0-9]+$/.test(text) ? Number(text) : Number.NaN)
  }
  const seatBody = (request: FastifyRequest) => {
    const body = request.body as Record<string, unknown>
    return { userId: id(body?.userId), concertDetailId: id(body?.concertDetailId), seatNo: id(body?.seatNo) }
  }

  // Seat maps and bookable days behind the app's versions in Redis, built by the app's queries
  // and encoders, as its seat-maps plugin does (the size check of SERIALIZER=auto included; the
  // thin reference builds every map on its event loop).
  const versions = redisKey(prefix, 'seat-map-versions')
  const timing = { checkMs: config.SEAT_MAP_CHECK_MS, maxAgeMs: config.CONCERT_CACHE_MS }
  const seatCount = createTtlCache<number, number>(config.CONCERT_CACHE_MS)
  const seatMaps = createVersionedCache({
    ...timing,
    version: (concertDetailId: number) => redis.hget(versions, `d:${concertDetailId}`),
    async load(concertDetailId: number) {
      if (config.SERIALIZER === 'auto') {
        await seatCount(concertDetailId, async () => {
          const row = await db.selectFrom('concert_details').select('total_seats').where('id', '=', concertDetailId).executeTakeFirst()
          return row?.total_seats ?? 0
        })
      }
      const seats = await concerts.seatMap(concertDetailId)
      const encoded = seats && encodeSeatMap(concertDetailId, seats)
      return { value: encoded, validUntil: encoded?.nextLapseAt ?? null }
    },
  })
  const days = createVersionedCache({
    ...timing,
    version: (concertId: number) => redis.hget(versions, `c:${concertId}`),
    load: (concertId: number) => loadBookableDays(concerts, concertId),
  })
  // The app's seat-maps plugin keeps its own map of details to concerts for the bumps.
  const bumpedConcert = new Map<number, number>()
  const invalidate = async (concertDetailId: number) => {
    const concertId = bumpedConcert.get(concertDetailId) ?? (await concerts.concertOf(concertDetailId))
    if (concertId !== undefined) bumpedConcert.set(concertDetailId, concertId)
    const bump = redis.multi().hincrby(versions, `d:${concertDetailId}`, 1)
    if (concertId !== undefined) bump.hincrby(versions, `c:${concertId}`, 1)
    await bump.exec()
  }
  // The gzip copy goes to clients that accept it, as the app sends it.
  const sendEncoded = (request: FastifyRequest, reply: FastifyReply, body: EncodedBody) => {
    const gzip = acceptsGzip(request.headers['accept-encoding']) ? gzipCopy(body) : undefined
    const { bytes, etag } = gzip ?? body
    reply.header('etag', etag).header('vary', 'accept-encoding').header('cache-control', 'private, no-cache')
    if (request.headers['if-none-match'] === etag) return reply.code(304).send()
    if (gzip) reply.header('content-encoding', 'gzip')
    return reply.type('application/json; charset=utf-8').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }

  const cachedConcert = createTtlCache<number, unknown>(config.CONCERT_CACHE_MS)
  const cachedOptions = createTtlCache<number, unknown>(config.CONCERT_CACHE_MS)

  const app = Fastify({ logger: false })
  app.setErrorHandler((error: unknown, _request: FastifyRequest, reply: FastifyReply) => {
    // AppErrors and Fastify's own refusals (a body that is not JSON, ...) carry their status; anything else is a bug.
    const { statusCode = 500, code = 'ERROR' } = error as { statusCode?: number; code?: string }
    return reply.code(statusCode).send({ statusCode, error: code, message: code, code })
  })

  app.get('/point/:userId', async (request) => {
    const userId = param(request, 'userId')
    await identity(request, userId)
    const balance = await points.balance(userId)
    if (!balance) throw refuse(404, 'USER_NOT_FOUND')
    return balance
  })

  app.patch('/point', async (request) => {
    const body = request.body as Record<string, unknown>
    const userId = id(body?.userId)
    const charge = id(body?.charge)
    if (charge > config.MAX_CHARGE) throw refuse(400, 'VALIDATION_FAILED')
    await identity(request, userId)
    return inTransaction(db, (trx) => points.charge(trx, userId, charge, config.MAX_BALANCE))
  })

  app.get('/concert/:concertId', async (request) => {
    const concertId = param(request, 'concertId')
    const concert = await cachedConcert(concertId, () => concerts.concert(concertId))
    if (!concert) throw refuse(404, 'CONCERT_NOT_FOUND')
    return concert
  })

  app.get('/concerts/:concertId', async (request) => {
    const concertId = param(request, 'concertId')
    const options = await cachedOptions(concertId, () => concerts.options(concertId))
    if (!options) throw refuse(404, 'CONCERT_NOT_FOUND')
    return options
  })

  app.post('/concert/wait', async (request) => {
    const body = request.body as Record<string, unknown>
    const userId = id(body?.userId)
    const concertId = body?.concertId === undefined ? SEED_CONCERT_ID : id(body.concertId)
    await identity(request, userId)
    if (!(await catalog.knowsUser(userId))) throw refuse(404, 'USER_NOT_FOUND')
    const place = await queue.enqueue(userId, concertId)
    if (!place) throw refuse(404, 'CONCERT_NOT_FOUND')
    return { token: signQueueToken({ sub: String(userId), cid: concertId }), ...place }
  })

  app.get('/concert/wait', async (request) => {
    const { userId, concertId } = caller(request)
    const standing = await queue.heartbeat(userId, concertId)
    if (standing.status === 'NONE') throw refuse(404, 'NOT_IN_QUEUE')
    return { userId, ...standing }
  })

  app.get('/concert/reservation/days/:concertId', async (request, reply) => {
    const { userId, concertId: tokenConcert } = caller(request)
    const concertId = param(request, 'concertId')
    if (!(await catalog.knowsConcert(concertId))) throw refuse(404, 'CONCERT_NOT_FOUND')
    await assertActive(userId, tokenConcert, concertId)
    const bookable = await days.get(concertId)
    if (!bookable) throw refuse(404, 'CONCERT_NOT_FOUND')
    return sendEncoded(request, reply, bookable)
  })

  app.get('/concert/seats/:concertDetailId', async (request, reply) => {
    const { userId, concertId: tokenConcert } = caller(request)
    const concertDetailId = param(request, 'concertDetailId')
    await assertActive(userId, tokenConcert, await concertOfDetail(concertDetailId))
    const seatMap = await seatMaps.get(concertDetailId)
    if (!seatMap) throw refuse(404, 'CONCERT_DETAIL_NOT_FOUND')
    return sendEncoded(request, reply, (request.query as { view?: string }).view === 'available' ? seatMap.available : seatMap.full)
  })

  app.patch('/concert/seat', async (request) => {
    const ref = seatBody(request)
    const { userId, concertId: tokenConcert } = caller(request)
    await assertActive(userId, tokenConcert, await concertOfDetail(ref.concertDetailId))
    if (ref.userId !== userId) throw refuse(403, 'USER_MISMATCH')
    const hold = await reservations.hold(ref, holdRules)
    await invalidate(ref.concertDetailId)
    return hold
  })

  app.post('/concert/reservation/days', async (request) => {
    const ref = seatBody(request)
    const { userId, concertId: tokenConcert } = caller(request)
    if (ref.userId !== userId) throw refuse(403, 'USER_MISMATCH')
    const concertId = await concertOfDetail(ref.concertDetailId)
    await assertActive(userId, tokenConcert, concertId)
    const payment = await inTransaction(db, (trx) => reservations.pay(trx, ref))
    await invalidate(ref.concertDetailId)
    // As the app: the slot goes once no hold in this concert is left to pay for.
    if ((await reservations.liveHolds(userId, concertId)) === 0) await queue.leave(userId, concertId)
    return payment
  })

  // The admitter, as the app's queue plugin runs it: every known concert's queue ticked twice an
  // interval by every worker, the script letting one win; a won round sweeps lapsed holds.
  let closing = false
  let timer: NodeJS.Timeout | undefined
  const round = async () => {
    try {
      const ticks = await Promise.all((await catalog.concertIds()).map((concertId) => queue.admitTick(concertId)))
      if (ticks.some((tick) => tick.won)) await reservations.sweepExpiredHolds()
    } catch {
      // A missed round is retried half an interval later.
    }
  }
  const schedule = () => {
    timer = setTimeout(() => void round().finally(() => !closing && schedule()), Math.min(1000, Math.max(5, Math.floor(config.ADMIT_INTERVAL_MS / 2))))
  }
  app.addHook('onReady', async () => schedule())
  app.addHook('onClose', async () => {
    closing = true
    clearTimeout(timer)
    await db.destroy()
    redis.disconnect()
  })
  return app
}
