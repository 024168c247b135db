import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type { Pool } from 'mysql2'
import { createDb, createMysqlPool } from '../db/connection.js'
import type { Database } from '../db/schema.js'
import { createReadDb, type ReplicaStatus } from '../db/replica.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    /** The pool under `db`, for its usage metrics. */
    dbPool: Pool
    /** For reads that may be a little stale: MYSQL_REPLICA_URL while it keeps up, else `db`. */
    dbRead: Kysely<Database>
    /** Where `dbRead` sends reads now, and the replica's lag at its last check. */
    replicaStatus: () => ReplicaStatus
  }
}

export default fp(
  async function db(app) {
    const { config } = app
    // Shedding includes the database: past MYSQL_QUEUE_LIMIT waiting requests, a worker answers
    // 503 at once instead of letting every request wait behind a queue it cannot drain in time.
    const queueLimit = config.SHED_LOAD ? config.MYSQL_QUEUE_LIMIT : 0
    const pool = createMysqlPool(config.MYSQL_URL, config.MYSQL_POOL_SIZE, queueLimit)
    const db = createDb(config.MYSQL_URL, config.MYSQL_POOL_SIZE, pool)
    app.decorate('db', db)
    app.decorate('dbPool', pool)
    const reads = createReadDb(db, pool, config, app.log)
    app.decorate('dbRead', reads.db)
    app.decorate('replicaStatus', reads.status)
    app.addHook('onClose', async () => {
      await reads.close()
      await db.destroy()
    })
  },
  { name: 'db', dependencies: ['config'] },
)
