import fp from 'fastify-plugin'
import { createActiveReads, type ActiveReads } from './active-reads.js'
import { createCatalog, type Catalog } from './catalog.js'
import { createQueue, defineQueueCommands, queueSettings, type Queue } from './queue.js'

/** Told how many users the round of ticks this process won let in. */
type TickListener = (tick: { admitted: number }) => Promise<void>

/** Users in line (pre-queue included) and active, over every concert's queue. */
type QueueSizes = { waiting: number; active: number }

declare module 'fastify' {
  interface FastifyInstance {
    queue: Queue & {
      sizes: () => Promise<QueueSizes>
      /** Who the queue answered ACTIVE lately, for read-only pages only (see `requireActiveToRead`). */
      activeReads: ActiveReads
    }
    /** The known users and concerts in Redis, so a join asks no MySQL. */
    queueCatalog: Catalog
    /** Runs `listener` after each round of admission ticks in which this process won at least one. */
    onAdmissionTick: (listener: TickListener) => void
  }
}

/** Bounds of the admitter's timer: often enough for a shortened interval to take effect within a second. */
const MIN_TIMER_MS = 5
const MAX_TIMER_MS = 1000

/**
 * The concerts' waiting queues and their admitter. Every worker ticks every known concert's
 * queue twice per interval in force (the shortest of them, at most every second, so an operator
 * shortening one takes effect quickly); the script lets only a call an interval after the last
 * tick admit, so there is exactly one admitter per concert per tick across workers and hosts,
 * even with zero traffic.
 */
export default fp(
  async function queue(app) {
    const { config } = app
    defineQueueCommands(app.redis)
    const prefix = config.REDIS_KEY_PREFIX
    const catalog = createCatalog(app.redis, app.db, prefix)
    const queue = createQueue(app.redis, prefix, queueSettings(config))
    const sizes = async (): Promise<QueueSizes> => {
      const now = Date.now()
      const counts = await Promise.all(
        (await catalog.concertIds()).map(async (concertId) => {
          const k = queue.keys(concertId)
          const [waiting, prequeue, active] = await Promise.all([app.redis.zcard(k.waiting), app.redis.zcard(k.prequeue), app.redis.zcount(k.active, `(${now}`, '+inf')])
          return { waiting: waiting + prequeue, active }
        }),
      )
      return counts.reduce((sum, c) => ({ waiting: sum.waiting + c.waiting, active: sum.active + c.active }), { waiting: 0, active: 0 })
    }
    // Half the slot's sliding lifetime at most, so a steady reader's Redis checks still slide the slot in time.
    const activeReads = createActiveReads(Math.min(config.ACTIVE_READ_MEMO_MS, Math.floor(config.ACTIVE_TTL_MS / 2)))
    // The worker that sees a user leave (or pay, which leaves) stops letting them read at once.
    const { leave: leaveQueue } = queue
    const leave: Queue['leave'] = async (userId, concertId) => {
      try {
        return await leaveQueue(userId, concertId)
      } finally {
        activeReads.forget(userId, concertId)
      }
    }
    app.decorate('queue', Object.assign(queue, { sizes, leave, activeReads }))
    app.decorate('queueCatalog', catalog)

    const listeners: TickListener[] = []
    app.decorate('onAdmissionTick', (listener: TickListener) => {
      listeners.push(listener)
    })

    let lastFailureLog = 0
    let timerMs = Math.min(MAX_TIMER_MS, Math.max(MIN_TIMER_MS, Math.floor(config.ADMIT_INTERVAL_MS / 2)))
    const round = async () => {
      try {
        // Redis lost the catalog (restarted without persistence): rebuilt before ticking.
        const concertIds = await catalog.askAgainIfMissing(() => catalog.concertIds())
        const ticks = await Promise.all(concertIds.map((concertId) => queue.admitTick(concertId)))
        if (ticks.length > 0) {
          const shortest = Math.min(...ticks.map((tick) => tick.intervalMs))
          timerMs = Math.min(MAX_TIMER_MS, Math.max(MIN_TIMER_MS, Math.floor(shortest / 2)))
        }
        const won = ticks.filter((tick) => tick.won)
        if (won.length === 0) return
        const admitted = won.reduce((sum, tick) => sum + tick.admitted, 0)
        if (admitted > 0) app.log.debug({ admitted }, 'admitted from the waiting queue')
        for (const listener of listeners) await listener({ admitted })
      } catch (error) {
        // Redis or MySQL down: keep ticking, log at most every 10 s.
        if (Date.now() - lastFailureLog > 10_000) {
          lastFailureLog = Date.now()
          app.log.warn({ err: error }, 'admission tick failed')
        }
      }
    }
    let timer: NodeJS.Timeout | undefined
    let closing = false
    const schedule = () => {
      timer = setTimeout(() => void round().finally(() => !closing && schedule()), timerMs)
    }
    app.addHook('onReady', async () => schedule())
    app.addHook('onClose', async () => {
      closing = true
      clearTimeout(timer)
    })
  },
  { name: 'queue', dependencies: ['config', 'redis', 'db'] },
)
