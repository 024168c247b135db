import { sql, type Kysely } from 'kysely'

// A seat map reads every seat of one option: its number, its status and when its hold lapses.
// The index on (option, status) found the rows but not those columns, so MySQL looked each seat up
// again by its primary key; with them in the index it reads the map from the index alone. It
// replaces the narrower index rather than adding a fourth to seats: a hold or a sale changes the
// status, which moved an entry of that index already (only taking over a lapsed hold, HELD to
// HELD with a new end, now moves one it did not). Status stays second, so counts of free seats
// by option still read only the AVAILABLE and HELD entries.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE seats
    DROP INDEX seats_detail_status,
    ADD INDEX seats_detail_map (concert_detail_id, status, seat_no, held_until)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE seats
    DROP INDEX seats_detail_map,
    ADD INDEX seats_detail_status (concert_detail_id, status)`.execute(db)
}
