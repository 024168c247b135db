import fp from 'fastify-plugin'
import { Piscina } from 'piscina'
import { extname } from 'node:path'
import { createTtlCache } from './ttl-cache.js'
import type { SeatMapTask, SeatMapWorkerData } from './seat-map-worker.js'
import type { EncodedSeatMap } from './encoded.js'
import { PoolOverloadedError } from '../db/connection.js'

export type SeatMapBuilder = 'inline' | 'worker'

export type SeatMapPool = Piscina<SeatMapTask, EncodedSeatMap | null>

declare module 'fastify' {
  interface FastifyInstance {
    serializer: {
      /** The threads seat maps are built in: started with the app (worker) or with the first large map (auto); never (inline). */
      pool: SeatMapPool | undefined
      /** Where this option's seat map is built: always in the pool (worker), never (inline), or by its size (auto). */
      seatMapBuilder: (concertDetailId: number) => Promise<SeatMapBuilder>
      /** The seat map queried and serialized by a pool thread; undefined when the option does not exist. */
      encodedSeatMap: (concertDetailId: number) => Promise<EncodedSeatMap | undefined>
    }
  }
}

/** Each thread awaits MySQL for part of every task, so it takes one task per connection. */
export const CONNECTIONS_PER_THREAD = 2

/** How long a worker trusts an option's seat count when it picks where to build its map. */
const SEAT_COUNT_TTL_MS = 60_000

/** Seat maps waiting for a thread, per thread: more are refused (503) rather than queued. */
export const QUEUED_PER_THREAD = 8

// The worker is a sibling of this module: .ts under tsx, .js once compiled to dist/.
const workerFile = new URL(`./seat-map-worker${extname(new URL(import.meta.url).pathname)}`, import.meta.url)

export function createSeatMapPool(mysqlUrl: string, threads: number): SeatMapPool {
  return new Piscina({
    filename: workerFile.href,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: CONNECTIONS_PER_THREAD,
    // An overloaded pool sheds like the rest of the server instead of queueing without bound.
    maxQueue: threads * QUEUED_PER_THREAD,
    // The threads keep MySQL sockets open between tasks, so their event loops must keep running.
    atomics: 'async',
    workerData: { mysqlUrl, connections: CONNECTIONS_PER_THREAD } satisfies SeatMapWorkerData,
  })
}

/**
 * SERIALIZER=inline|worker|auto: where the largest payload, the seat map, is built. A pool
 * thread runs the query and the serialization itself, so the event loop neither parses the rows
 * nor clones them across threads; auto sends options of SERIALIZER_THRESHOLD_SEATS seats or
 * more to the pool (bench/serializer.ts measures where that pays).
 */
export default fp(
  async function serializer(app) {
    const { config } = app
    let pool: SeatMapPool | undefined
    // auto starts the threads with the first seat map that needs them: until then (and for
    // halls that never do) they would only cost start-up time and memory.
    const startedPool = () => (pool ??= createSeatMapPool(config.MYSQL_URL, config.SERIALIZER_THREADS))
    app.addHook('onClose', async () => {
      await pool?.close()
    })
    if (config.SERIALIZER === 'worker') {
      // A worker file that cannot load, or a thread that cannot reach MySQL, fails start-up
      // rather than the first seat map.
      await startedPool().run({ concertDetailId: 0 })
    }

    // An option's size changes only when seats are added; a stale size picks the slower path, never
    // a wrong answer. So it is remembered for a minute whatever CONCERT_CACHE_MS says: with reads
    // uncached, a second query per seat map would double every request's waits for a connection.
    const seatCount = createTtlCache<number, number>(SEAT_COUNT_TTL_MS)
    const totalSeats = async (concertDetailId: number) => {
      const row = await app.db.selectFrom('concert_details').select('total_seats').where('id', '=', concertDetailId).executeTakeFirst()
      return row?.total_seats ?? 0
    }

    app.decorate('serializer', {
      get pool() {
        return pool
      },
      async seatMapBuilder(concertDetailId: number): Promise<SeatMapBuilder> {
        if (config.SERIALIZER !== 'auto') return config.SERIALIZER
        const seats = await seatCount(concertDetailId, () => totalSeats(concertDetailId))
        return seats >= config.SERIALIZER_THRESHOLD_SEATS ? 'worker' : 'inline'
      },
      async encodedSeatMap(concertDetailId: number): Promise<EncodedSeatMap | undefined> {
        if (config.SERIALIZER === 'inline') throw new Error('SERIALIZER=inline builds every seat map on the event loop')
        const encoded = await startedPool()
          .run({ concertDetailId })
          .catch((error: Error) => {
            if (error.message === 'Task queue is at limit') throw new PoolOverloadedError()
            // The thread sends the MySQL error's code in its cause; the error handler reads it here.
            throw Object.assign(error, error.cause)
          })
        return encoded ?? undefined
      },
    })
  },
  { name: 'serializer', dependencies: ['config', 'db'] },
)
