import fp from 'fastify-plugin'
import { createQueue, defineQueueCommands, type Queue } from './queue.js'

/** Told how many users the tick let in. */
type TickListener = (tick: { admitted: number }) => Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    queue: Queue
    /** Runs `listener` after each admission tick this process won (once per tick cluster-wide). */
    onAdmissionTick: (listener: TickListener) => void
  }
}

/**
 * The waiting queue and its admitter. Every worker ticks twice per ADMIT_INTERVAL_MS so no slot
 * is missed when a timer drifts; the script lets only the first call of each slot admit, so
 * there is exactly one admitter per tick across workers and hosts, even with zero traffic.
 */
export default fp(
  async function queue(app) {
    const { config } = app
    defineQueueCommands(app.redis)
    const queue = createQueue(app.redis, app.redisKey, {
      maxActive: config.MAX_ACTIVE,
      admitBatch: config.ADMIT_BATCH,
      admitIntervalMs: config.ADMIT_INTERVAL_MS,
      activeTtlMs: config.ACTIVE_TTL_MS,
    })
    app.decorate('queue', queue)

    const listeners: TickListener[] = []
    app.decorate('onAdmissionTick', (listener: TickListener) => {
      listeners.push(listener)
    })

    let lastFailureLog = 0
    let running = false
    const tick = async () => {
      if (running) return
      running = true
      try {
        const { won, admitted } = await queue.admitTick()
        if (!won) return
        if (admitted > 0) app.log.debug({ admitted }, 'admitted from the waiting queue')
        for (const listener of listeners) await listener({ admitted })
      } catch (error) {
        // Redis or MySQL down: keep ticking, log at most every 10 s.
        if (Date.now() - lastFailureLog > 10_000) {
          lastFailureLog = Date.now()
          app.log.warn({ err: error }, 'admission tick failed')
        }
      } finally {
        running = false
      }
    }
    const timer = setInterval(() => void tick(), Math.max(5, Math.floor(config.ADMIT_INTERVAL_MS / 2)))
    app.addHook('onClose', async () => clearInterval(timer))
  },
  { name: 'queue', dependencies: ['config', 'redis'] },
)
