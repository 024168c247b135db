import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import { sql } from 'kysely'
import { Type } from '@sinclair/typebox'
import { AppError } from './errors.js'
import { errorResponses } from '../shared/schemas.js'

const Health = Type.Object({
  status: Type.Literal('ok'),
  mysql: Type.Literal('ok'),
  redis: Type.Literal('ok'),
  pid: Type.Integer({ description: 'The worker that answered' }),
})

/**
 * Sheds load with a fast 503 + Retry-After when the event loop lags, is busy nearly all the time
 * or the heap fills (and, in the db plugin, when too many requests wait for MySQL), so a
 * saturated worker answers "later" instead of queueing work until it dies. SHED_LOAD=false keeps
 * the health route but never sheds (the lab's "no protection" run).
 */
export default fp(
  async function pressure(app) {
    const { config } = app
    const shed = config.SHED_LOAD
    const checkDependencies = async () => {
      await Promise.all([sql`SELECT 1`.execute(app.db), app.redis.ping()])
    }
    // A worker that cannot reach its dependencies fails to start (and the primary retries).
    await checkDependencies()
    await app.register(underPressure, {
      maxEventLoopDelay: shed ? config.MAX_EVENT_LOOP_DELAY_MS : 0,
      maxEventLoopUtilization: shed ? config.MAX_EVENT_LOOP_UTILIZATION : 0,
      // Utilization of the last sample, not the average since start-up: a worker saturated now
      // must shed now, however idle it was an hour ago.
      eventLoopUtilizationMode: 'interval',
      sampleInterval: 500,
      maxHeapUsedBytes: shed ? config.MAX_HEAP_USED_MB * 1024 * 1024 : 0,
      retryAfter: config.RETRY_AFTER_S,
    })

    // Liveness plus a live ping of each dependency, naming the one that is down. (under-pressure's
    // own status route answers any failed check with its generic "under pressure".)
    const schema = {
      tags: ['health'],
      summary: 'Liveness plus a MySQL and Redis ping',
      response: { 200: Health, ...errorResponses(503) },
    }
    app.get('/health', { schema, logLevel: 'warn' }, async (_request, reply) => {
      const [mysql, redis] = await Promise.allSettled([sql`SELECT 1`.execute(app.db), app.redis.ping()])
      const down = [mysql.status === 'rejected' && 'MySQL', redis.status === 'rejected' && 'Redis'].filter(Boolean)
      if (down.length > 0) {
        reply.header('retry-after', String(config.RETRY_AFTER_S))
        throw new AppError(503, 'DEPENDENCY_UNAVAILABLE', `${down.join(' and ')} unavailable`)
      }
      return { status: 'ok' as const, mysql: 'ok' as const, redis: 'ok' as const, pid: process.pid }
    })
  },
  { name: 'pressure', dependencies: ['config', 'errors', 'db', 'redis'] },
)
