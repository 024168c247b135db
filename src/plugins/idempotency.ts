import fp from 'fastify-plugin'
import { createHash } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/schema.js'
import { AppError } from './errors.js'
import { inTransaction } from '../db/transaction.js'

export interface IdempotentCall {
  /** What the key is unique within: the route and the caller. */
  scope: string
  key: string | undefined
  request: unknown
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Runs `work` in one transaction; with a key, the first answer is stored in that same
     * transaction, and a retry (even a concurrent one) gets it back instead of acting twice.
     */
    idempotent: <T>(call: IdempotentCall, work: (trx: Transaction<Database>) => Promise<T>) => Promise<T>
    /** The stored answer of an earlier call with this key, if there was one. */
    storedResponse: <T>(call: IdempotentCall) => Promise<T | undefined>
  }
}

const ER_DUP_ENTRY = 1062

function hashRequest(request: unknown): string {
  return createHash('sha256').update(JSON.stringify(request)).digest('hex')
}

async function runIdempotent<T>(
  db: Kysely<Database>,
  call: IdempotentCall,
  work: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  const { key } = call
  if (key === undefined) return inTransaction(db, work)
  const requestHash = hashRequest(call.request)
  try {
    return await inTransaction(db, async (trx) => {
      // Claims the key first: a concurrent retry's INSERT waits on this row lock and, once we
      // commit, fails as a duplicate and reads the stored answer. A failure rolls the claim back.
      await trx
        .insertInto('idempotency_keys')
        .values({ scope: call.scope, idem_key: key, request_hash: requestHash, status_code: 200, response: '' })
        .execute()
      const body = await work(trx)
      await trx
        .updateTable('idempotency_keys')
        .set({ response: JSON.stringify(body) })
        .where('scope', '=', call.scope)
        .where('idem_key', '=', key)
        .execute()
      return body
    })
  } catch (error) {
    if ((error as { errno?: number }).errno !== ER_DUP_ENTRY) throw error
  }
  const stored = await findStored<T>(db, call)
  if (!stored) throw new Error(`idempotency key ${call.scope}/${key} vanished after a duplicate insert`)
  return stored
}

async function findStored<T>(db: Kysely<Database>, call: IdempotentCall): Promise<T | undefined> {
  if (call.key === undefined) return undefined
  const stored = await db
    .selectFrom('idempotency_keys')
    .select(['request_hash', 'response'])
    .where('scope', '=', call.scope)
    .where('idem_key', '=', call.key)
    .executeTakeFirst()
  if (!stored) return undefined
  if (stored.request_hash !== hashRequest(call.request)) {
    throw new AppError(422, 'IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with a different request')
  }
  return JSON.parse(stored.response) as T
}

export default fp(
  async function idempotency(app) {
    app.decorate('idempotent', <T>(call: IdempotentCall, work: (trx: Transaction<Database>) => Promise<T>) =>
      runIdempotent(app.db, call, work),
    )
    app.decorate('storedResponse', <T>(call: IdempotentCall) => findStored<T>(app.db, call))
  },
  { name: 'idempotency', dependencies: ['db'] },
)
