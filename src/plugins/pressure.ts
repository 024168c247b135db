import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import { sql } from 'kysely'
import { Codel, SHED_SAMPLE_MS } from '../shared/codel.js'
import { PoolOverloadedError } from '../db/connection.js'
import { overloaded } from './errors.js'
import { QUEUE_PATH } from '../queue/schemas.js'

declare module 'fastify' {
  interface FastifyInstance {
    shedding: {
      /** Requests answered 503 SERVICE_OVERLOADED so far, at the door or waiting for MySQL. */
      readonly rejected: number
      /** Of those, the ones refused after waiting for a MySQL connection: their routing and Redis work was spent. */
      readonly rejectedAfterWait: number
    }
  }
}

// Sent as it is: a shed request costs a header write, no serialization, no Redis, no MySQL.
const overloadedBytes = Buffer.from(JSON.stringify(overloaded))

/**
 * The HTTP server's first check, before Fastify sees a request: while `closed()` says so the
 * request is refused with the 503 the plugin sends, straight on Node's response. Under a
 * sustained overload those answers are most of what a worker does: in the lab's ramp (large
 * hall, 1,024 connections) a shed answer through Fastify's hooks cost about three hello-worlds,
 * and answering at the door raised goodput from a mean 66 to 79 answers/s over three runs each.
 */
export interface Door {
  closed: (request: IncomingMessage) => boolean
  refuse: (response: ServerResponse) => void
}

/**
 * Whether a request may need MySQL: all but the waiting room's own calls. While only the MySQL
 * pool is overloaded, those are still let in: a rush's joins and polls are what the waiting room
 * is for, and turning them away frees no connection.
 */
export function mayNeedMysql(url: string | undefined): boolean {
  if (url === undefined || !url.startsWith(QUEUE_PATH)) return true
  return url.length !== QUEUE_PATH.length && url[QUEUE_PATH.length] !== '?'
}

/** Longest a refusal is held before it is answered whatever the pace: a client is told within it. */
export const MAX_REFUSAL_HOLD_MS = 1000

/**
 * Answers refusals at once up to `perSecond` (a bucket holding one second's worth), and beyond
 * that holds each refused request and answers it, oldest first, as the bucket refills, or once it
 * has been held `maxHoldMs`. A client that honours Retry-After never meets the limit; a
 * closed loop of clients that do not, each resending the moment it is refused, otherwise turns
 * every CPU cycle the refusals save into more refusals, its own and the server's. Held, a request
 * costs a place in an array until then.
 */
export function createRefusalPacer(perSecond: number, answer: (response: ServerResponse) => void, maxHoldMs = MAX_REFUSAL_HOLD_MS) {
  let tokens = perSecond
  let filledAt = performance.now()
  let held: ServerResponse[] = []
  let heldAt: number[] = []
  let head = 0
  let timer: NodeJS.Timeout | undefined

  const refill = (now: number) => {
    tokens = Math.min(perSecond, tokens + ((now - filledAt) * perSecond) / 1000)
    filledAt = now
  }
  const tell = (response: ServerResponse) => {
    // A client that gave up while held has nobody left to tell.
    if (!response.destroyed) answer(response)
  }
  const release = () => {
    const response = held[head]!
    held[head] = undefined as never
    head++
    tell(response)
  }
  const drain = () => {
    const now = performance.now()
    refill(now)
    while (head < held.length && tokens >= 1) {
      // A client that gave up costs no token.
      if (!held[head]!.destroyed) tokens--
      release()
    }
    while (head < held.length && now - heldAt[head]! >= maxHoldMs) release()
    if (head === held.length) {
      held = []
      heldAt = []
      head = 0
      clearInterval(timer)
      timer = undefined
    }
  }

  return {
    refuse(response: ServerResponse): void {
      if (perSecond <= 0) return answer(response)
      const now = performance.now()
      if (head === held.length) {
        refill(now)
        if (tokens >= 1) {
          tokens--
          return answer(response)
        }
      }
      held.push(response)
      heldAt.push(now)
      timer ??= setInterval(drain, SHED_SAMPLE_MS).unref()
    },
    /** Refusals waiting to be answered. */
    get held(): number {
      return held.length - head
    },
    /** Answers everyone held now: the worker is closing. */
    flush(): void {
      clearInterval(timer)
      timer = undefined
      const waiting = held.slice(head)
      held = []
      heldAt = []
      head = 0
      waiting.forEach(tell)
    },
  }
}

/** A door that stays open until the pressure plugin takes it over. */
export function createDoor(): Door {
  return { closed: () => false, refuse: () => {} }
}

/**
 * Sheds load with a fast 503 + Retry-After instead of queueing work a client will not wait for.
 * The event loop and the wait for a MySQL connection (SheddingPool) each run CoDel: waits that
 * stay above SHED_TARGET_MS for SHED_INTERVAL_MS mean a standing queue. While the loop's queue
 * stands, or the pool's stands and is not moving, new requests are refused at the door before
 * routing; the waiting room's own calls (mayNeedMysql) are refused only for the loop's. A burst
 * that drains within the target plus the interval is served whole. The heap
 * (and, if set, event-loop utilization) is left to @fastify/under-pressure. SHED_LOAD=false
 * never sheds (the lab's "no protection" run).
 */
export default fp<{ door?: Door }>(
  async function pressure(app, { door }) {
    const { config } = app
    const shed = config.SHED_LOAD
    const checkDependencies = async () => {
      await Promise.all([sql`SELECT 1`.execute(app.db), app.redis.ping()])
    }
    // A worker that cannot reach its dependencies fails to start (and the primary retries).
    await checkDependencies()

    let answered = 0
    let answeredAfterWait = 0
    const retryAfter = String(config.RETRY_AFTER_S)
    const shedHeaders = { 'content-type': 'application/json; charset=utf-8', 'retry-after': retryAfter }
    const rawHeaders = { ...shedHeaders, 'content-length': overloadedBytes.byteLength }
    const refuse = (reply: FastifyReply) => {
      answered++
      reply.code(503).headers(shedHeaders).send(overloadedBytes)
    }

    await app.register(underPressure, {
      maxEventLoopUtilization: shed ? config.MAX_EVENT_LOOP_UTILIZATION : 0,
      // Utilization of the last sample, not the average since start-up: a worker saturated now
      // must shed now, however idle it was an hour ago.
      eventLoopUtilizationMode: 'interval',
      sampleInterval: 500,
      maxHeapUsedBytes: shed ? config.MAX_HEAP_USED_MB * 1024 * 1024 : 0,
      // Answered here; under-pressure then calls next(), which does nothing on a sent reply.
      pressureHandler: (_request, reply) => refuse(reply),
    })

    // A request that arrives while the loop is busy waits for the loop's current turn, so the
    // lag of a timer due every SHED_SAMPLE_MS is the wait of the requests arriving with it.
    const loop = new Codel(config.SHED_TARGET_MS, config.SHED_INTERVAL_MS)
    if (shed) {
      let due = performance.now() + SHED_SAMPLE_MS
      const timer = setInterval(() => {
        const now = performance.now()
        const lag = Math.max(0, now - due)
        // A turn within the target is the loop's queue draining: nothing waited too long.
        if (lag <= loop.targetMs) loop.drained()
        else loop.observe(lag, now)
        due = now + SHED_SAMPLE_MS
      }, SHED_SAMPLE_MS).unref()
      app.addHook('onClose', async () => clearInterval(timer))
    }
    const isOverloaded = (url: string | undefined) => loop.overloaded || (app.dbQueue.standing && mayNeedMysql(url))

    app.decorate('shedding', {
      get rejected() {
        return answered
      },
      get rejectedAfterWait() {
        return answeredAfterWait
      },
    })
    // Refused a MySQL connection: answered by the error handler, counted here once per request.
    app.addHook('onError', async (_request, _reply, error) => {
      if (!(error instanceof PoolOverloadedError)) return
      answered++
      answeredAfterWait++
    })
    if (shed) {
      if (door) {
        const pacer = createRefusalPacer(config.SHED_REFUSALS_PER_S, (response) => response.writeHead(503, rawHeaders).end(overloadedBytes))
        door.closed = (request) => isOverloaded(request.url)
        door.refuse = (response) => {
          answered++
          pacer.refuse(response)
        }
        // Held refusals are answered as closing starts, not left to hold the server open.
        app.addHook('preClose', async () => pacer.flush())
        app.addHook('onClose', async () => {
          door.closed = () => false
        })
      }
      // Requests that reach Fastify without the HTTP server (inject) meet the same rule here.
      app.addHook('onRequest', (request, reply, done) => {
        if (!isOverloaded(request.raw.url)) return done()
        refuse(reply)
      })
    }
  },
  { name: 'pressure', dependencies: ['config', 'errors', 'db', 'redis'] },
)
