import t from 'tap'
import { Redis } from 'ioredis'
import { createDb } from '../src/db/connection.js'
import { prepareDatabase } from '../src/db/prepare.js'
import { catalogKeys } from '../src/queue/catalog.js'
import { concertQueueKeys } from '../src/queue/queue.js'
import { testConfig } from './helpers/app.js'
import { dropStore } from './helpers/store.js'

t.test('hosts starting at once on an empty database seed it exactly once, and publish its users and concerts to Redis', async (t) => {
  const config = testConfig({ SEED_USERS: 300, SEED_DETAILS: 4, SEATS_PER_DETAIL: 30 })
  t.teardown(() => dropStore(config))

  // Six hosts: each creates the database if missing, migrates and seeds, all at the same moment.
  await Promise.all(Array.from({ length: 6 }, () => prepareDatabase(config)))

  const db = createDb(config.MYSQL_URL, 2)
  t.teardown(() => db.destroy())
  const count = async (table: 'users' | 'concert_details' | 'seats') =>
    Number((await db.selectFrom(table).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
  t.equal(await count('users'), 300, 'every user once')
  t.equal(await count('concert_details'), 4 + 2, 'every dated option once: 4 of concert 1, 2 of concert 2')
  t.equal(await count('seats'), 6 * 30, 'every seat once')
  const details = await db.selectFrom('concert_details').select(['id', 'total_seats']).execute()
  t.same(details.map((detail) => detail.total_seats), [30, 30, 30, 30, 30, 30], 'each option counts its seats')

  // The queue's join asks Redis whether a user or concert exists, never MySQL.
  const redis = new Redis(config.REDIS_URL)
  t.teardown(() => redis.disconnect())
  const keys = catalogKeys(config.REDIS_KEY_PREFIX)
  t.equal(await redis.scard(keys.users), 300, 'every user is known to the queue')
  t.same((await redis.smembers(keys.concerts)).sort(), ['1', '2'], 'both concerts are known to the queue')
  t.ok(Number(await redis.hget(concertQueueKeys(config.REDIS_KEY_PREFIX, 2).concert, 'saleOpensAt')) <= Date.now(), 'the seeded sale is open')

  // Seeding again keeps balances: a restart must not refund or wipe anyone.
  await db.updateTable('users').set({ point: 7 }).where('id', '=', 1).execute()
  await prepareDatabase(config)
  t.equal((await db.selectFrom('users').select('point').where('id', '=', 1).executeTakeFirstOrThrow()).point, 7)
  t.equal(await count('concert_details'), 6)
})
