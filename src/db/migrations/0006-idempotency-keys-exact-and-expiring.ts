import { sql, type Kysely } from 'kysely'

// Idempotency keys are compared byte for byte: under the table's case-insensitive collation
// `key-abc` and `KEY-ABC` were one key, so a second, different charge was answered with the
// first one's reply and silently not made. Keys and scopes are printable ASCII (the header schema
// allows nothing else), so ascii_bin holds them exactly. The index on created_at lets the sweeper
// delete expired keys in small batches without scanning the table.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE idempotency_keys
    MODIFY scope VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    MODIFY idem_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL`.execute(db)
  await db.schema.createIndex('idempotency_keys_created_at').on('idempotency_keys').column('created_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('idempotency_keys_created_at').on('idempotency_keys').execute()
  // Back to the table's default character set and collation, as 0001 created the columns.
  await sql`ALTER TABLE idempotency_keys MODIFY scope VARCHAR(64) NOT NULL, MODIFY idem_key VARCHAR(128) NOT NULL`.execute(db)
}
