import { sql, type Kysely } from 'kysely'

// When a concert's sale opens: before it, joins wait in a pre-queue that is shuffled at the
// opening. Existing concerts get the migration's time, so their sale is already open.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('concerts')
    .addColumn('sale_opens_at', sql`datetime(3)`, (col) => col.notNull().defaultTo(sql`CURRENT_TIMESTAMP(3)`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('concerts').dropColumn('sale_opens_at').execute()
}
