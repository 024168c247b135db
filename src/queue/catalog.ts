import { randomUUID } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import type { Kysely } from 'kysely'
import type { RedisClient } from '../plugins/redis.js'
import type { Database } from '../db/schema.js'
import { redisKey } from '../plugins/redis.js'
import { concertQueueKeys } from './queue.js'

const BATCH = 10_000

/**
 * The deployment-wide keys that let a join touch Redis only: the known user ids, the known
 * concerts, and the marker that says both were built from MySQL. They live under the
 * deployment's hash tag, not a concert's, so the join checks the user with a command of its own
 * before the enqueue script (one extra round trip) instead of copying every user into every
 * concert's slot.
 */
export function catalogKeys(prefix: string) {
  return {
    users: redisKey(prefix, 'known-users'),
    concerts: redisKey(prefix, 'known-concerts'),
    ready: redisKey(prefix, 'catalog-ready'),
    lock: redisKey(prefix, 'catalog-lock'),
  }
}

/**
 * Copies the users and concerts of MySQL into Redis: the user set, the concert set and each
 * concert's hash with its sale opening. Run by the seed, and again when Redis lost it.
 */
export async function publishCatalog(redis: RedisClient, db: Kysely<Database>, prefix: string): Promise<void> {
  const keys = catalogKeys(prefix)
  for (let after = 0; ; ) {
    const rows = await db.selectFrom('users').select('id').where('id', '>', after).orderBy('id').limit(BATCH).execute()
    if (rows.length === 0) break
    await redis.sadd(keys.users, ...rows.map((row) => row.id))
    after = rows[rows.length - 1]!.id
  }
  const concerts = await db.selectFrom('concerts').select(['id', 'sale_opens_at']).execute()
  for (const concert of concerts) {
    await redis.hset(concertQueueKeys(prefix, concert.id).concert, 'saleOpensAt', concert.sale_opens_at.getTime())
  }
  if (concerts.length > 0) await redis.sadd(keys.concerts, ...concerts.map((concert) => concert.id))
  await redis.set(keys.ready, new Date().toISOString())
}

/**
 * What the join asks instead of MySQL. When the catalog is missing (Redis restarted without
 * persistence) the first caller rebuilds it once, under a lock shared by every worker and host;
 * the others wait for the marker rather than each querying MySQL.
 */
export function createCatalog(redis: RedisClient, db: Kysely<Database>, prefix: string) {
  const keys = catalogKeys(prefix)
  let rebuilding: Promise<void> | undefined
  const knownConcerts = new Set<number>()

  const rebuild = async () => {
    const deadline = Date.now() + 30_000
    const owner = randomUUID()
    while (!(await redis.exists(keys.ready))) {
      if (await redis.set(keys.lock, owner, 'PX', 30_000, 'NX')) {
        try {
          await publishCatalog(redis, db, prefix)
        } finally {
          if ((await redis.get(keys.lock)) === owner) await redis.del(keys.lock)
        }
        return
      }
      if (Date.now() > deadline) throw new Error('the queue catalog was not rebuilt within 30 s')
      await delay(50)
    }
  }

  /** Rebuilds the catalog when it is missing, or waits for the worker or host rebuilding it. */
  const ensure = async (): Promise<void> => {
    if (await redis.exists(keys.ready)) return
    rebuilding ??= rebuild().finally(() => (rebuilding = undefined))
    await rebuilding
  }

  /**
   * Asks Redis something the catalog answers (`ask`); when it finds nothing (undefined, false, 0
   * or an empty list), Redis may have lost the catalog: rebuilt, or waited for, and asked again.
   * Asked again even when the catalog turns out whole: another worker may have completed it
   * between the first answer and the check, which then changes the answer.
   */
  const askAgainIfMissing = async <T>(ask: () => Promise<T>): Promise<T> => {
    const first = await ask()
    if (first && !(Array.isArray(first) && first.length === 0)) return first
    await ensure()
    return ask()
  }

  return {
    askAgainIfMissing,
    async knowsUser(userId: number): Promise<boolean> {
      return (await askAgainIfMissing(() => redis.sismember(keys.users, userId))) === 1
    },
    async knowsConcert(concertId: number): Promise<boolean> {
      // Concerts are only ever added, so a concert once known stays known: the dates, which every
      // admitted user polls, then ask Redis nothing for it after a worker's first call.
      if (knownConcerts.has(concertId)) return true
      const known = (await askAgainIfMissing(() => redis.sismember(keys.concerts, concertId))) === 1
      if (known) knownConcerts.add(concertId)
      return known
    },
    async concertIds(): Promise<number[]> {
      return (await redis.smembers(keys.concerts)).map(Number)
    },
  }
}

export type Catalog = ReturnType<typeof createCatalog>
