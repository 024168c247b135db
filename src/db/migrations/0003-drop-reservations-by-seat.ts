import type { Kysely } from 'kysely'

// Undoes 0002. A hold now expires the seat's previous reservation by its primary key (the seat
// row points at it), so nothing searches reservations by seat; the index only cost gap locks
// that made concurrent holds' inserts deadlock. InnoDB let 0002's index stand in for the one
// the concert_detail_id foreign key needs, so that key gets back the index 0001 gave it first.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('concert_detail_id').on('reservations').column('concert_detail_id').execute()
  await db.schema.dropIndex('reservations_seat_status').on('reservations').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('reservations_seat_status').on('reservations').columns(['concert_detail_id', 'seat_no', 'status']).execute()
  await db.schema.dropIndex('concert_detail_id').on('reservations').execute()
}
