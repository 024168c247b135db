import type { Kysely, Transaction } from 'kysely'
import type { Database } from './schema.js'

const ER_LOCK_DEADLOCK = 1213
const ER_LOCK_WAIT_TIMEOUT = 1205
const ATTEMPTS = 4

/**
 * Runs `work` in a transaction, retrying when InnoDB picks it as a deadlock victim: rows locked
 * in a different order by concurrent payments and charges can deadlock, and a retry is safe
 * because the victim's changes were rolled back whole.
 */
export async function inTransaction<T>(db: Kysely<Database>, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(work)
    } catch (error) {
      const errno = (error as { errno?: number }).errno
      const retryable = errno === ER_LOCK_DEADLOCK || errno === ER_LOCK_WAIT_TIMEOUT
      if (!retryable || attempt >= ATTEMPTS) throw error
      await new Promise((resolve) => setTimeout(resolve, 5 * attempt + Math.random() * 10))
    }
  }
}
