import type { Config } from '../config.js'
import { createDb, ensureDatabase } from './connection.js'
import { migrateToLatest } from './migrate.js'
import { seed } from './seed.js'
import { createRedis } from '../plugins/redis.js'
import { publishCatalog } from '../queue/catalog.js'

export interface PrepareOptions {
  migrate?: boolean
  seed?: boolean
  /** Cancels the seed between batches (a migration always runs to its end); rejects with the abort reason. */
  signal?: AbortSignal
}

/** Creates the database when missing, migrates it to the latest schema and seeds it (idempotent). */
export async function prepareDatabase(config: Config, options: PrepareOptions = { migrate: true, seed: true }) {
  const { signal } = options
  await ensureDatabase(config.MYSQL_URL)
  const db = createDb(config.MYSQL_URL, 2)
  try {
    const applied = options.migrate ? await migrateToLatest(db) : []
    if (options.seed) {
      await seed(db, {
        signal,
        users: config.SEED_USERS,
        points: config.SEED_POINTS,
        details: config.SEED_DETAILS,
        seatsPerDetail: config.SEATS_PER_DETAIL,
        price: config.SEAT_PRICE,
      })
      signal?.throwIfAborted()
      // The queue's join asks Redis, not MySQL, whether a user or concert exists.
      const redis = createRedis(config)
      try {
        await redis.connect()
        await publishCatalog(redis, db, config.REDIS_KEY_PREFIX)
      } finally {
        redis.disconnect()
      }
    }
    return { applied }
  } finally {
    await db.destroy()
  }
}
