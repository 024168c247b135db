import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AppError } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: the caller's identity from the queue token (or, in user-id mode, a bare id). */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** preHandler: authenticate, then let only users the queue has admitted through. */
    requireActive: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** Refuses (403) a user the queue has not admitted; slides the active slot's expiry. */
    assertActive: (userId: number) => Promise<void>
    signQueueToken: (userId: number) => string
  }
  interface FastifyRequest {
    authUserId: number
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: { sub: string }
    user: { sub: string }
  }
}

export const BARE_USER_ID = /^[1-9][0-9]{0,9}$/

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
      verify: { algorithms: ['HS256'], allowedAud: QUEUE_AUDIENCE, requiredClaims: ['aud'] },
    })
    app.decorateRequest('authUserId', 0)

    app.decorate('signQueueToken', (userId: number) => app.jwt.sign({ sub: String(userId) }))

    const verify = (token: string): number => {
      if (!COMPACT_JWT.test(token)) throw new AppError(401, 'TOKEN_INVALID', 'The queue token is not valid')
      let sub: string
      try {
        sub = app.jwt.verify<{ sub: string }>(token).sub
      } catch (error) {
        const expired = (error as { code?: string }).code === 'FAST_JWT_EXPIRED'
        throw expired
          ? new AppError(401, 'TOKEN_EXPIRED', 'The queue token has expired; join the queue again')
          : new AppError(401, 'TOKEN_INVALID', 'The queue token is not valid')
      }
      if (typeof sub !== 'string' || !BARE_USER_ID.test(sub)) throw new AppError(401, 'TOKEN_INVALID', 'The queue token is not valid')
      return Number(sub)
    }

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const token = bearerCredential(request)
      if (token === undefined) throw new AppError(401, 'TOKEN_MISSING', 'Send the queue token as Authorization: Bearer <token>')
      // user-id mode trusts a bare id (the original load scripts send one); tokens still work.
      request.authUserId = config.AUTH_MODE === 'user-id' && BARE_USER_ID.test(token) ? Number(token) : verify(token)
    })

    app.decorate('assertActive', async (userId: number) => {
      const standing = await app.queue.verifyAndTouch(userId)
      if (standing.status === 'WAITING') {
        throw new AppError(403, 'NOT_ACTIVE', `Still waiting in the queue at position ${standing.position}`, {
          position: standing.position,
          etaSeconds: standing.etaSeconds,
        })
      }
      if (standing.status === 'NONE') {
        throw new AppError(403, 'NOT_IN_QUEUE', 'Not in the queue: join it with POST /concert/wait')
      }
    })

    app.decorate('requireActive', async (request: FastifyRequest, reply: FastifyReply) => {
      await app.authenticate(request, reply)
      await app.assertActive(request.authUserId)
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
