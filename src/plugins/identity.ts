import fp from 'fastify-plugin'
import { createVerifier, type Algorithm, type DecodedJwt, type KeyFetcher } from 'fast-jwt'
import buildGetJwks from 'get-jwks'
import type { FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { AppError } from './errors.js'
import { BARE_USER_ID, QUEUE_AUDIENCE, bearerCredential } from './auth.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * preHandler of the calls that act for a user: verifies the platform login's identity token
     * and sets `identityUserId`. In AUTH_MODE=user-id it lets every call through.
     */
    requireIdentity: (request: FastifyRequest) => Promise<void>
  }
  interface FastifyRequest {
    /** The user the identity token was issued to; 0 when none was verified. */
    identityUserId: number
  }
}

/**
 * Refuses (403) a call whose body or path names another user than the identity token's. In
 * AUTH_MODE=user-id nothing was verified and the named user is taken at its word.
 */
export function assertIdentity(request: FastifyRequest, userId: number): void {
  if (request.server.config.AUTH_MODE === 'user-id') return
  if (request.identityUserId !== userId) {
    throw new AppError(403, 'IDENTITY_MISMATCH', 'The identity token belongs to another user')
  }
}

const invalid = () => new AppError(401, 'IDENTITY_INVALID', 'The identity token is not valid')

/** How identity tokens are checked: the HS256 secret, a PEM public key, or a JWKS by kid. */
function identityKey(config: Config): { key: string | KeyFetcher; algorithms: Algorithm[] } {
  if (config.IDENTITY_JWKS_URL) {
    const url = new URL(config.IDENTITY_JWKS_URL)
    const jwks = buildGetJwks({ jwksPath: `${url.pathname}${url.search}`, max: 100, ttl: 10 * 60_000 })
    const domain = `${url.origin}/`
    return {
      key: async ({ header }: DecodedJwt) => jwks.getPublicKey({ domain, kid: header.kid, alg: header.alg }),
      algorithms: ['RS256', 'ES256'],
    }
  }
  if (config.IDENTITY_PUBLIC_KEY) return { key: config.IDENTITY_PUBLIC_KEY, algorithms: ['RS256', 'ES256'] }
  if (config.IDENTITY_JWT_SECRET) return { key: config.IDENTITY_JWT_SECRET, algorithms: ['HS256'] }
  throw new Error('AUTH_MODE=token needs IDENTITY_JWT_SECRET, IDENTITY_PUBLIC_KEY or IDENTITY_JWKS_URL before the app is built')
}

/**
 * Identity tokens come from the platform's login; this service only verifies them. They are a
 * different credential from the queue tokens the join hands out: a token carrying the queue
 * audience is refused here, and the queue verifier accepts nothing but that audience.
 */
export default fp(
  async function identity(app) {
    const { config } = app
    app.decorateRequest('identityUserId', 0)
    if (config.AUTH_MODE === 'user-id') {
      app.decorate('requireIdentity', async () => {})
      return
    }
    const { key, algorithms } = identityKey(config)
    // fast-jwt, the verifier under @fastify/jwt: refuses `alg: none`, other algorithms, bad
    // signatures and expired tokens; a fetched key is cached by kid.
    const verify = createVerifier({ key: key as KeyFetcher, algorithms, requiredClaims: ['sub'], cache: 1000 })

    app.decorate('requireIdentity', async (request: FastifyRequest) => {
      const token = bearerCredential(request)
      if (token === undefined) {
        throw new AppError(401, 'IDENTITY_MISSING', "Send the user's identity token from the login as Authorization: Bearer <token>")
      }
      let claims: { sub?: unknown; aud?: unknown }
      try {
        claims = await verify(token)
      } catch (error) {
        if ((error as { code?: string }).code === 'FAST_JWT_EXPIRED') {
          throw new AppError(401, 'IDENTITY_EXPIRED', 'The identity token has expired; log in again')
        }
        throw invalid()
      }
      const audiences = [claims.aud].flat()
      if (audiences.includes(QUEUE_AUDIENCE)) throw invalid()
      if (typeof claims.sub !== 'string' || !BARE_USER_ID.test(claims.sub)) throw invalid()
      request.identityUserId = Number(claims.sub)
    })
  },
  { name: 'identity', dependencies: ['config', 'errors'] },
)
