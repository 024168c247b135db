import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import { sql } from 'kysely'

/**
 * Sheds load with a fast 503 + Retry-After when the event loop lags, is busy nearly all the time
 * or the heap fills (and, in the db plugin, when too many requests wait for MySQL), so a
 * saturated worker answers "later" instead of queueing work until it dies. SHED_LOAD=false never
 * sheds (the lab's "no protection" run).
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
  },
  { name: 'pressure', dependencies: ['config', 'errors', 'db', 'redis'] },
)
