import { Migrator, type Kysely, type Migration, type MigrationProvider, type NoMigrations } from 'kysely'
import * as initialSchema from './migrations/0001-initial-schema.js'
import * as reservationsBySeat from './migrations/0002-reservations-by-seat.js'
import * as dropReservationsBySeat from './migrations/0003-drop-reservations-by-seat.js'
import * as concertSaleOpensAt from './migrations/0004-concert-sale-opens-at.js'
import * as seatsLapsedHolds from './migrations/0005-seats-lapsed-holds.js'
import * as idempotencyKeysExactAndExpiring from './migrations/0006-idempotency-keys-exact-and-expiring.js'
import * as seatsDetailMap from './migrations/0007-seats-detail-map.js'

// Listed in code rather than read from a folder, so the same list works from src/ and dist/.
// Append-only: a migration that shipped is undone by a later one, never deleted, because Kysely
// refuses a database that ran a migration the code no longer lists.
export const migrations: Record<string, Migration> = {
  '0001-initial-schema': initialSchema,
  '0002-reservations-by-seat': reservationsBySeat,
  '0003-drop-reservations-by-seat': dropReservationsBySeat,
  '0004-concert-sale-opens-at': concertSaleOpensAt,
  '0005-seats-lapsed-holds': seatsLapsedHolds,
  '0006-idempotency-keys-exact-and-expiring': idempotencyKeysExactAndExpiring,
  '0007-seats-detail-map': seatsDetailMap,
}

const provider: MigrationProvider = { getMigrations: async () => migrations }

function migrator(db: Kysely<any>): Migrator {
  return new Migrator({ db, provider })
}

function applied(outcome: Awaited<ReturnType<Migrator['migrateToLatest']>>): string[] {
  const { error, results } = outcome
  if (error) throw error instanceof Error ? error : new Error(String(error))
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName)
}

export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  return applied(await migrator(db).migrateToLatest())
}

/** Migrates up (or down) to exactly `name` (NO_MIGRATIONS: none); for stepping through every migration. */
export async function migrateTo(db: Kysely<any>, name: string | NoMigrations): Promise<string[]> {
  return applied(await migrator(db).migrateTo(name))
}
