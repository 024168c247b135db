import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { NO_MIGRATIONS, sql, type Kysely } from 'kysely'
import { createDb, databaseUrl, dropDatabase, ensureDatabase } from '../src/db/connection.js'
import { migrateTo, migrateToLatest, migrations } from '../src/db/migrate.js'

const names = Object.keys(migrations)

async function freshDatabase(t: Test): Promise<Kysely<any>> {
  const url = databaseUrl(process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/seatrush', `seatrush_migrations_${randomBytes(4).toString('hex')}`)
  await ensureDatabase(url)
  const db = createDb(url, 2)
  t.teardown(async () => {
    await db.destroy()
    await dropDatabase(url)
  })
  return db
}

/**
 * Every table's CREATE statement as a sorted list of its lines, auto-increment counters aside:
 * the schema as MySQL sees it, whatever order its indexes were created in.
 */
async function schemaOf(db: Kysely<any>): Promise<Record<string, string[]>> {
  const { rows: tables } = await sql<Record<string, string>>`SHOW TABLES`.execute(db)
  const schema: Record<string, string[]> = {}
  for (const row of tables) {
    const table = Object.values(row)[0]!
    if (table.startsWith('kysely_')) continue
    const { rows } = await sql<Record<string, string>>`SHOW CREATE TABLE ${sql.id(table)}`.execute(db)
    const lines = rows[0]!['Create Table']!.replace(/ AUTO_INCREMENT=\d+/, '').split('\n')
    schema[table] = lines.map((line) => line.trim().replace(/,$/, '')).sort()
  }
  return schema
}

async function indexesOf(db: Kysely<any>, table: string): Promise<string[]> {
  const { rows } = await sql<{ Key_name: string }>`SHOW INDEX FROM ${sql.id(table)}`.execute(db)
  return [...new Set(rows.map((row) => row.Key_name))].sort()
}

t.test('a database stepped through every migration, one at a time, ends with the schema of a fresh one', async (t) => {
  const stepped = await freshDatabase(t)
  for (const name of names) t.same(await migrateTo(stepped, name), [name], `${name} applies on its own`)
  t.same(await migrateToLatest(stepped), [], 'nothing is left to apply')

  const fresh = await freshDatabase(t)
  t.same(await migrateToLatest(fresh), names, 'a new database runs every migration in order')
  t.same(await schemaOf(stepped), await schemaOf(fresh), 'both schemas are the same, table by table')
})

t.test('a database that ran a migration which a later one undoes still migrates to latest', async (t) => {
  const db = await freshDatabase(t)
  await migrateTo(db, '0002-reservations-by-seat')
  t.ok((await indexesOf(db, 'reservations')).includes('reservations_seat_status'), 'after 0002 the index by seat exists')
  t.same(await migrateToLatest(db), names.slice(2), 'the rest apply')
  t.notOk((await indexesOf(db, 'reservations')).includes('reservations_seat_status'), 'and the index is gone again')
})

t.test('every migration can be undone, down to an empty database, and applied again', async (t) => {
  const db = await freshDatabase(t)
  await migrateToLatest(db)
  const latest = await schemaOf(db)
  for (const name of [...names].reverse().slice(1)) await migrateTo(db, name)
  await migrateTo(db, NO_MIGRATIONS)
  t.same(Object.keys(await schemaOf(db)), [], 'no table is left')
  await migrateToLatest(db)
  t.same(await schemaOf(db), latest, 'migrating up again gives the same schema')
})

t.test('each migration undone restores the schema exactly as it was before it', async (t) => {
  const db = await freshDatabase(t)
  const before: Record<string, string[]>[] = [await schemaOf(db)]
  for (const name of names) {
    await migrateTo(db, name)
    before.push(await schemaOf(db))
  }
  for (let i = names.length - 1; i >= 0; i--) {
    await migrateTo(db, i === 0 ? NO_MIGRATIONS : names[i - 1]!)
    t.same(await schemaOf(db), before[i], `undoing ${names[i]} gives back the schema before it`)
  }
})
