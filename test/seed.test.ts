import t from 'tap'
import { createDb, dropDatabase } from '../src/db/connection.js'
import { prepareDatabase } from '../src/db/prepare.js'
import { testConfig } from './helpers/app.js'

t.test('hosts starting at once on an empty database seed it exactly once', async (t) => {
  const config = testConfig({ SEED_USERS: 300, SEED_DETAILS: 4, SEATS_PER_DETAIL: 30 })
  t.teardown(() => dropDatabase(config.MYSQL_URL))

  // Six hosts: each creates the database if missing, migrates and seeds, all at the same moment.
  await Promise.all(Array.from({ length: 6 }, () => prepareDatabase(config)))

  const db = createDb(config.MYSQL_URL, 2)
  t.teardown(() => db.destroy())
  const count = async (table: 'users' | 'concert_details' | 'seats') =>
    Number((await db.selectFrom(table).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
  t.equal(await count('users'), 300, 'every user once')
  t.equal(await count('concert_details'), 4, 'every dated option once')
  t.equal(await count('seats'), 4 * 30, 'every seat once')
  const details = await db.selectFrom('concert_details').select(['id', 'total_seats']).execute()
  t.same(details.map((detail) => detail.total_seats), [30, 30, 30, 30], 'each option counts its seats')

  // Seeding again keeps balances: a restart must not refund or wipe anyone.
  await db.updateTable('users').set({ point: 7 }).where('id', '=', 1).execute()
  await prepareDatabase(config)
  t.equal((await db.selectFrom('users').select('point').where('id', '=', 1).executeTakeFirstOrThrow()).point, 7)
  t.equal(await count('concert_details'), 4)
})
