import fp from 'fastify-plugin'
import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit'
import type { FastifyRequest } from 'fastify'
import { AppError } from './errors.js'
import { redisKey } from './redis.js'

/**
 * Whom a call counts against: the verified user (the queue token's on booking calls, the
 * identity token's on user calls), else the client address (Fastify's `request.ip`, which
 * TRUST_PROXY lets come from X-Forwarded-For). An unverified body field is never the key, except
 * in AUTH_MODE=user-id, whose trust model takes the named user as the caller.
 */
function caller(request: FastifyRequest): string {
  const verified = request.authUserId || request.identityUserId
  if (verified) return `user:${verified}`
  if (request.server.config.AUTH_MODE === 'user-id') {
    const userId = (request.body as { userId?: unknown } | undefined)?.userId
    if (typeof userId === 'number') return `user:${userId}`
  }
  return `ip:${request.ip}`
}

/**
 * Route config allowing each caller `perMinute` calls a minute (0: unlimited). The check runs as
 * a preHandler after the route's own, so the credential is verified before it is counted.
 */
export function perUserRateLimit(perMinute: number): RateLimitOptions | false {
  if (perMinute === 0) return false
  return { max: perMinute, timeWindow: 60_000, hook: 'preHandler', keyGenerator: caller }
}

/**
 * Per-caller limits counted in Redis, so they hold across workers and hosts. Only routes that ask
 * (`config.rateLimit`) are limited. While Redis is down the limit is skipped rather than failing
 * the call: the route then answers 503 itself if it needs Redis.
 */
export default fp(
  async function rateLimiter(app) {
    await app.register(rateLimit, {
      global: false,
      redis: app.redis,
      // A hash tag of their own (`{prefix:rate-limit}`): each counter is one key, so on a Redis
      // Cluster they need no slot in common with the queue and its scripts.
      nameSpace: redisKey(`${app.config.REDIS_KEY_PREFIX}:rate-limit`, ''),
      skipOnError: true,
      errorResponseBuilder: (_request, context) =>
        new AppError(context.statusCode, 'RATE_LIMITED', `Too many requests, retry in ${context.after}`),
    })
  },
  { name: 'rate-limit', dependencies: ['redis', 'errors', 'auth', 'identity'] },
)
