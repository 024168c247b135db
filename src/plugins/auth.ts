import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import { performance } from 'node:perf_hooks'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AppError } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: the caller's identity from the queue token (or, in user-id mode, a bare id). */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** preHandler: authenticate, then let through only users admitted to the queue of the concert `concertOf` names. */
    requireActiveIn: (concertOf: (request: FastifyRequest) => Promise<number>) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /**
     * preHandler of read-only booking pages: as `requireActiveIn`, but a user the queue answered
     * active less than ACTIVE_READ_MEMO_MS ago is let through without asking Redis again. Never
     * for a call that writes.
     */
    requireActiveToRead: (concertOf: (request: FastifyRequest) => Promise<number>) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** Refuses (403) a caller whose token is for another concert or whom that concert's queue has not admitted; slides the active slot's expiry. */
    assertActive: (request: FastifyRequest, concertId: number) => Promise<void>
    signQueueToken: (userId: number, concertId: number) => string
  }
  interface FastifyRequest {
    authUserId: number
    /** The concert whose queue the token is for; undefined for a bare user id (user-id mode), which may act in any. */
    queueConcertId: number | undefined
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: { sub: string; cid: number }
    user: { sub: string; cid?: number }
  }
}

export const BARE_USER_ID = /^[1-9][0-9]{0,9}$/

/** Queue tokens whose verification one worker keeps: well above the users active at once per worker. */
const VERIFIED_TOKENS = 10_000

/** The audience of queue tokens: what keeps an identity token from passing as one, and back. */
export const QUEUE_AUDIENCE = 'seatrush-queue'

// Three base64url parts: anything else (trailing junk, padding, extra words) is not a token.
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** `Bearer <credential>` or the bare credential; undefined when absent, '' when malformed. */
export function bearerCredential(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header !== 'string' || header.trim() === '') return undefined
  const parts = header.trim().split(/\s+/)
  if (parts[0]?.toLowerCase() === 'bearer') return parts.length === 2 ? parts[1] : ''
  return parts.length === 1 ? parts[0] : ''
}

export default fp(
  async function auth(app) {
    const { config } = app
    if (!config.TOKEN_SECRET) throw new Error('TOKEN_SECRET must be set before the app is built')
    await app.register(jwt, {
      secret: config.TOKEN_SECRET,
      sign: { algorithm: 'HS256', expiresIn: config.TOKEN_TTL_S, aud: QUEUE_AUDIENCE },
      // A token verified once is known good until it expires: its repeats skip the HMAC and the
      // JSON decoding (fast-jwt's cache; failures are not reused). Keyed by the token itself:
      // hashing it (the default key) cost a hit most of what the HMAC costs.
      verify: { algorithms: ['HS256'], allowedAud: QUEUE_AUDIENCE, requiredClaims: ['aud'], cache: VERIFIED_TOKENS, cacheKeyBuilder: (token: string) => token },
    })
    app.decorateRequest('authUserId', 0)
    app.decorateRequest('queueConcertId', undefined)

    app.decorate('signQueueToken', (userId: number, concertId: number) => app.jwt.sign({ sub: String(userId), cid: concertId }))

    const verify = (token: string): { userId: number; concertId: number } => {
      if (!COMPACT_JWT.test(token)) throw new AppError(401, 'TOKEN_INVALID', 'The queue token is not valid')
      let sub: string
      let cid: unknown
      try {
        ;({ sub, cid } = app.jwt.verify<{ sub: string; cid?: unknown }>(token))
      } catch (error) {
        const expired = (error as { code?: string }).code === 'FAST_JWT_EXPIRED'
        throw expired
          ? new AppError(401, 'TOKEN_EXPIRED', 'The queue token has expired; join the queue again')
          : new AppError(401, 'TOKEN_INVALID', 'The queue token is not valid')
      }
      if (typeof sub !== 'string' || !BARE_USER_ID.test(sub)) throw new AppError(401, 'TOKEN_INVALID', 'The queue token is not valid')
      // Tokens signed before queues were per concert carry no concert: they were for the first.
      if (cid !== undefined && !(Number.isSafeInteger(cid) && (cid as number) > 0)) throw new AppError(401, 'TOKEN_INVALID', 'The queue token is not valid')
      return { userId: Number(sub), concertId: (cid as number | undefined) ?? 1 }
    }

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const token = bearerCredential(request)
      if (token === undefined) throw new AppError(401, 'TOKEN_MISSING', 'Send the queue token as Authorization: Bearer <token>')
      // user-id mode trusts a bare id (the original load scripts send one); tokens still work.
      if (config.AUTH_MODE === 'user-id' && BARE_USER_ID.test(token)) {
        request.authUserId = Number(token)
      } else {
        ;({ userId: request.authUserId, concertId: request.queueConcertId } = verify(token))
      }
    })

    const assertTokenFor = (request: FastifyRequest, concertId: number) => {
      const tokenConcert = request.queueConcertId
      if (tokenConcert !== undefined && tokenConcert !== concertId) {
        throw new AppError(403, 'WRONG_CONCERT', `The queue token is for concert ${tokenConcert}, not concert ${concertId}: join that concert's queue`)
      }
    }

    const assertActive = async (request: FastifyRequest, concertId: number) => {
      assertTokenFor(request, concertId)
      const standing = await app.queue.verifyAndTouch(request.authUserId, concertId)
      if (standing.status === 'PREQUEUE') {
        throw new AppError(403, 'NOT_ACTIVE', `Waiting for the sale to open at ${standing.opensAt}`, { position: 0, etaSeconds: standing.etaSeconds })
      }
      if (standing.status === 'WAITING') {
        throw new AppError(403, 'NOT_ACTIVE', `Still waiting in the queue at position ${standing.position}`, {
          position: standing.position,
          etaSeconds: standing.etaSeconds,
        })
      }
      if (standing.status === 'NONE') {
        throw new AppError(403, 'NOT_IN_QUEUE', 'Not in the queue: join it with POST /concert/wait')
      }
    }
    app.decorate('assertActive', assertActive)

    app.decorate('requireActiveIn', (concertOf: (request: FastifyRequest) => Promise<number>) => async (request: FastifyRequest, reply: FastifyReply) => {
      await app.authenticate(request, reply)
      await assertActive(request, await concertOf(request))
    })

    const { activeReads } = app.queue
    app.decorate('requireActiveToRead', (concertOf: (request: FastifyRequest) => Promise<number>) => async (request: FastifyRequest, reply: FastifyReply) => {
      await app.authenticate(request, reply)
      const concertId = await concertOf(request)
      assertTokenFor(request, concertId)
      if (activeReads.has(request.authUserId, concertId)) return
      const askedAt = performance.now()
      await assertActive(request, concertId)
      activeReads.remember(request.authUserId, concertId, askedAt)
    })
  },
  { name: 'auth', dependencies: ['config', 'queue'] },
)

/** Refuses a protected call whose body names someone other than the token's user. */
export function assertSameUser(request: FastifyRequest, bodyUserId: number): void {
  if (bodyUserId !== request.authUserId) {
    throw new AppError(403, 'USER_MISMATCH', 'The token belongs to another user')
  }
}
