import { sql, type Kysely } from 'kysely'

// Timestamps are DATETIME(3) in UTC (every connection sets time_zone = '+00:00'), so hold
// expiry compares to NOW(3) on the database's clock, the one clock every worker and host shares.
const now3 = sql`CURRENT_TIMESTAMP(3)`

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'integer', (col) => col.unsigned().autoIncrement().primaryKey())
    .addColumn('name', 'varchar(64)', (col) => col.notNull())
    .addColumn('point', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('starting_point', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', sql`datetime(3)`, (col) => col.notNull().defaultTo(now3))
    .addCheckConstraint('users_point_not_negative', sql`point >= 0`)
    .execute()

  await db.schema
    .createTable('point_history')
    .addColumn('id', 'bigint', (col) => col.unsigned().autoIncrement().primaryKey())
    .addColumn('user_id', 'integer', (col) => col.unsigned().notNull().references('users.id'))
    .addColumn('kind', 'varchar(16)', (col) => col.notNull())
    .addColumn('amount', 'bigint', (col) => col.notNull())
    .addColumn('balance_after', 'bigint', (col) => col.notNull())
    .addColumn('reservation_id', 'bigint', (col) => col.unsigned())
    .addColumn('created_at', sql`datetime(3)`, (col) => col.notNull().defaultTo(now3))
    .execute()
  await db.schema.createIndex('point_history_user').on('point_history').column('user_id').execute()

  await db.schema
    .createTable('concerts')
    .addColumn('id', 'integer', (col) => col.unsigned().autoIncrement().primaryKey())
    .addColumn('title', 'varchar(200)', (col) => col.notNull())
    .addColumn('artist', 'varchar(200)', (col) => col.notNull())
    .addColumn('venue', 'varchar(200)', (col) => col.notNull())
    .addColumn('created_at', sql`datetime(3)`, (col) => col.notNull().defaultTo(now3))
    .execute()

  await db.schema
    .createTable('concert_details')
    .addColumn('id', 'integer', (col) => col.unsigned().autoIncrement().primaryKey())
    .addColumn('concert_id', 'integer', (col) => col.unsigned().notNull().references('concerts.id'))
    .addColumn('starts_at', sql`datetime(3)`, (col) => col.notNull())
    .addColumn('price', 'integer', (col) => col.unsigned().notNull())
    .addColumn('total_seats', 'integer', (col) => col.unsigned().notNull())
    .execute()
  await db.schema.createIndex('concert_details_concert').on('concert_details').column('concert_id').execute()

  await db.schema
    .createTable('seats')
    .addColumn('id', 'bigint', (col) => col.unsigned().autoIncrement().primaryKey())
    .addColumn('concert_detail_id', 'integer', (col) => col.unsigned().notNull().references('concert_details.id'))
    .addColumn('seat_no', 'integer', (col) => col.unsigned().notNull())
    .addColumn('status', 'varchar(16)', (col) => col.notNull().defaultTo('AVAILABLE'))
    .addColumn('user_id', 'integer', (col) => col.unsigned())
    .addColumn('reservation_id', 'bigint', (col) => col.unsigned())
    .addColumn('held_until', sql`datetime(3)`)
    // One row per seat: the row itself is what a hold or a sale claims.
    .addUniqueConstraint('seats_detail_seat_no', ['concert_detail_id', 'seat_no'])
    .execute()
  await db.schema.createIndex('seats_detail_status').on('seats').columns(['concert_detail_id', 'status']).execute()

  await db.schema
    .createTable('reservations')
    .addColumn('id', 'bigint', (col) => col.unsigned().autoIncrement().primaryKey())
    .addColumn('user_id', 'integer', (col) => col.unsigned().notNull().references('users.id'))
    .addColumn('concert_detail_id', 'integer', (col) => col.unsigned().notNull().references('concert_details.id'))
    .addColumn('seat_no', 'integer', (col) => col.unsigned().notNull())
    .addColumn('price', 'integer', (col) => col.unsigned().notNull())
    .addColumn('status', 'varchar(16)', (col) => col.notNull())
    .addColumn('held_until', sql`datetime(3)`, (col) => col.notNull())
    .addColumn('created_at', sql`datetime(3)`, (col) => col.notNull().defaultTo(now3))
    .addColumn('confirmed_at', sql`datetime(3)`)
    .execute()
  await db.schema.createIndex('reservations_status_held_until').on('reservations').columns(['status', 'held_until']).execute()
  await db.schema.createIndex('reservations_user').on('reservations').column('user_id').execute()

  await db.schema
    .createTable('payments')
    .addColumn('id', 'bigint', (col) => col.unsigned().autoIncrement().primaryKey())
    .addColumn('reservation_id', 'bigint', (col) => col.unsigned().notNull().unique())
    .addColumn('user_id', 'integer', (col) => col.unsigned().notNull().references('users.id'))
    .addColumn('amount', 'bigint', (col) => col.notNull())
    .addColumn('created_at', sql`datetime(3)`, (col) => col.notNull().defaultTo(now3))
    .execute()

  await db.schema
    .createTable('idempotency_keys')
    .addColumn('scope', 'varchar(64)', (col) => col.notNull())
    .addColumn('idem_key', 'varchar(128)', (col) => col.notNull())
    .addColumn('request_hash', 'char(64)', (col) => col.notNull())
    .addColumn('status_code', 'smallint', (col) => col.notNull())
    .addColumn('response', 'text', (col) => col.notNull())
    .addColumn('created_at', sql`datetime(3)`, (col) => col.notNull().defaultTo(now3))
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['scope', 'idem_key'])
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['idempotency_keys', 'payments', 'reservations', 'seats', 'concert_details', 'concerts', 'point_history', 'users']) {
    await db.schema.dropTable(table).ifExists().execute()
  }
}
