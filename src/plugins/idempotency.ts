import fp from 'fastify-plugin'
import { createHash } from 'node:crypto'
import { sql, type Kysely, type Transaction } from 'kysely'
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
    /** Deletes keys older than IDEMPOTENCY_TTL_H, a batch at a time; answers how many went. */
    sweepIdempotencyKeys: () => Promise<number>
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

const SWEEP_INTERVAL_MS = 60_000
const SWEEP_BATCH = 1000
const SWEEP_MAX_BATCHES = 20

/**
 * Deletes expired keys oldest first, in batches the created_at index finds without a scan, so a
 * sweep never holds many locks at once; a backlog larger than one sweep goes on the next.
 */
async function sweepExpired(db: Kysely<Database>, ttlHours: number): Promise<number> {
  let deleted = 0
  for (let batch = 0; batch < SWEEP_MAX_BATCHES; batch++) {
    const result = await db
      .deleteFrom('idempotency_keys')
      .where(sql<boolean>`created_at < NOW(3) - INTERVAL ${ttlHours} HOUR`)
      .orderBy('created_at')
      .limit(SWEEP_BATCH)
      .executeTakeFirst()
    const gone = Number(result.numDeletedRows)
    deleted += gone
    if (gone < SWEEP_BATCH) break
  }
  return deleted
}

export default fp(
  async function idempotency(app) {
    app.decorate('idempotent', <T>(call: IdempotentCall, work: (trx: Transaction<Database>) => Promise<T>) =>
      runIdempotent(app.db, call, work),
    )
    app.decorate('storedResponse', <T>(call: IdempotentCall) => findStored<T>(app.db, call))
    app.decorate('sweepIdempotencyKeys', () => sweepExpired(app.db, app.config.IDEMPOTENCY_TTL_H))

    // Every worker sweeps about once a minute, at a random phase so they seldom meet; a sweep
    // that fails (MySQL away) is simply the next one's work.
    const sweep = () =>
      void app.sweepIdempotencyKeys().then(
        (deleted) => deleted > 0 && app.log.info({ deleted }, 'expired idempotency keys deleted'),
        (error: Error) => app.log.warn({ err: error }, 'idempotency key sweep failed'),
      )
    let timer: NodeJS.Timeout | undefined
    app.addHook('onReady', async () => {
      timer = setInterval(sweep, SWEEP_INTERVAL_MS * (0.75 + Math.random() / 2)).unref()
    })
    app.addHook('onClose', async () => clearInterval(timer))
  },
  { name: 'idempotency', dependencies: ['config', 'db'] },
)
