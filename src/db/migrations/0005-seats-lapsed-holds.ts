import type { Kysely } from 'kysely'

// The sweeper finds lapsed holds by (status, held_until) instead of scanning every seat of every
// hall, which under REPEATABLE READ also locked what it scanned and stalled holds on other seats.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('seats_status_held_until').on('seats').columns(['status', 'held_until']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('seats_status_held_until').on('seats').execute()
}
