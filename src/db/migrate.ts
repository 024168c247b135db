import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely'
import * as initialSchema from './migrations/0001-initial-schema.js'

// Listed in code rather than read from a folder, so the same list works from src/ and dist/.
const migrations: Record<string, Migration> = {
  '0001-initial-schema': initialSchema,
}

const provider: MigrationProvider = { getMigrations: async () => migrations }

export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, provider })
  const { error, results } = await migrator.migrateToLatest()
  if (error) throw error instanceof Error ? error : new Error(String(error))
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName)
}
