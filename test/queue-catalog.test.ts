import t from 'tap'
import { Redis } from 'ioredis'
import { createDb } from '../src/db/connection.js'
import { prepareDatabase } from '../src/db/prepare.js'
import type { RedisClient } from '../src/plugins/redis.js'
import { catalogKeys, createCatalog, publishCatalog } from '../src/queue/catalog.js'
import { concertQueueKeys } from '../src/queue/queue.js'
import { testConfig } from './helpers/app.js'
import { dropStore } from './helpers/store.js'

t.test('a worker that finds the catalog missing while another completes its rebuild asks again, instead of calling a known user or concert unknown', async (t) => {
  const config = testConfig({ SEED_USERS: 20 })
  t.teardown(() => dropStore(config))
  await prepareDatabase(config)
  const prefix = config.REDIS_KEY_PREFIX
  const db = createDb(config.MYSQL_URL, 2)
  const redis = new Redis(config.REDIS_URL)
  const other = new Redis(config.REDIS_URL)
  t.teardown(async () => {
    redis.disconnect()
    other.disconnect()
    await db.destroy()
  })
  const keys = catalogKeys(prefix)
  // Redis restarted without persistence: the catalog is gone.
  const loseCatalog = () => redis.del(keys.users, keys.concerts, keys.ready, keys.lock, concertQueueKeys(prefix, 1).concert, concertQueueKeys(prefix, 2).concert)

  /**
   * This worker's Redis, on which the first SISMEMBER answers what Redis held when it was asked
   * (nothing), while another worker finishes rebuilding the catalog before the answer arrives.
   */
  const racing = (): RedisClient => {
    let raced = false
    return new Proxy(redis, {
      get(target, property, receiver) {
        if (property !== 'sismember') return Reflect.get(target, property, receiver)
        return async (key: string, member: number) => {
          const answer = await target.sismember(key, member)
          if (!raced) {
            raced = true
            await publishCatalog(other, db, prefix)
          }
          return answer
        }
      },
    }) as RedisClient
  }

  await loseCatalog()
  t.equal(await createCatalog(racing(), db, prefix).knowsUser(5), true, 'a seeded user is known')
  await loseCatalog()
  t.equal(await createCatalog(racing(), db, prefix).knowsConcert(2), true, 'a seeded concert is known')
  await loseCatalog()
  t.equal(await createCatalog(racing(), db, prefix).knowsUser(21), false, 'a user never seeded stays unknown')
  t.equal(await redis.scard(keys.users), 20, 'the catalog is whole again')
})
