import type { Kysely } from 'kysely'

// Taking a seat expires the seat's previous HELD reservation by (concert_detail_id, seat_no).
// Without this index InnoDB locked every reservation of the option while scanning, so holds on
// different seats deadlocked with each other and with payments under a rush.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('reservations_seat_status').on('reservations').columns(['concert_detail_id', 'seat_no', 'status']).execute()
}

// InnoDB dropped the index 0001 made for the concert_detail_id foreign key once this one could
// serve it, so going down restores that index before dropping this one.
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('concert_detail_id').on('reservations').column('concert_detail_id').execute()
  await db.schema.dropIndex('reservations_seat_status').on('reservations').execute()
}
