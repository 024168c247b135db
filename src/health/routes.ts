import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
import { AppError } from '../plugins/errors.js'
import { redisMasters } from '../plugins/redis.js'
import { Health, healthSchema } from './schemas.js'

/**
 * Liveness plus a live ping of each dependency, naming the one that is down. (under-pressure's
 * own status route answers any failed check with its generic "under pressure".)
 */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Health)
  app.get('/health', { schema: healthSchema, logLevel: 'warn' }, async (_request, reply) => {
    // On a Redis Cluster every master must answer: a master that is down takes its slots with it.
    const pingRedis = () => Promise.all(redisMasters(app.redis).map((node) => node.ping()))
    const [mysql, redis] = await Promise.allSettled([sql`SELECT 1`.execute(app.db), pingRedis()])
    const down = [mysql.status === 'rejected' && 'MySQL', redis.status === 'rejected' && 'Redis'].filter(Boolean)
    if (down.length > 0) {
      reply.header('retry-after', String(app.config.RETRY_AFTER_S))
      throw new AppError(503, 'DEPENDENCY_UNAVAILABLE', `${down.join(' and ')} unavailable`)
    }
    return { status: 'ok' as const, mysql: 'ok' as const, redis: 'ok' as const, pid: process.pid }
  })
}

export default healthRoutes
