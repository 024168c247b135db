import fp from 'fastify-plugin'
import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit'
import type { FastifyRequest } from 'fastify'
import { AppError } from './errors.js'
import { redisKey } from './redis.js'

/** Whom a call counts against: the token's user, else the body's userId, else the address. */
function caller(request: FastifyRequest): string {
  if (request.authUserId) return `user:${request.authUserId}`
  const userId = (request.body as { userId?: unknown } | undefined)?.userId
  return typeof userId === 'number' ? `user:${userId}` : `ip:${request.ip}`
}

/**
 * Route config allowing each user `perMinute` calls a minute (0: unlimited). The check runs as a
 * preHandler, after the body is validated and the token verified, so it can key on the user.
 */
export function perUserRateLimit(perMinute: number): RateLimitOptions | false {
  if (perMinute === 0) return false
  return { max: perMinute, timeWindow: 60_000, hook: 'preHandler', keyGenerator: caller }
}

/**
 * Per-user limits counted in Redis, so they hold across workers and hosts. Only routes that ask
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
  { name: 'rate-limit', dependencies: ['redis', 'errors', 'auth'] },
)
