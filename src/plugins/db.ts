import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type { Pool } from 'mysql2'
import { SheddingPool, createDb, createMysqlPool } from '../db/connection.js'
import type { Database } from '../db/schema.js'
import { createReadDb, type ReplicaStatus } from '../db/replica.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    /** The pool under `db`, for its usage metrics. */
    dbPool: Pool
    /** What `db` takes connections through: times the waits and, with SHED_LOAD, sheds. */
    dbQueue: SheddingPool
    /** For reads that may be a little stale: MYSQL_REPLICA_URL while it keeps up, else `db`. */
    dbRead: Kysely<Database>
    /** Where `dbRead` sends reads now, and the replica's lag at its last check. */
    replicaStatus: () => ReplicaStatus
  }
}

export default fp(
  async function db(app) {
    const { config } = app
    const pool = createMysqlPool(config.MYSQL_URL, config.MYSQL_POOL_SIZE)
    // Shedding includes the database: a wait for a connection that stands above SHED_TARGET_MS
    // for SHED_INTERVAL_MS is answered 503 instead of queueing work nobody will wait for.
    const shed = config.SHED_LOAD ? { targetMs: config.SHED_TARGET_MS, intervalMs: config.SHED_INTERVAL_MS } : undefined
    const queue = new SheddingPool(pool, shed)
    const db = createDb(config.MYSQL_URL, config.MYSQL_POOL_SIZE, queue)
    app.decorate('db', db)
    app.decorate('dbPool', pool)
    app.decorate('dbQueue', queue)
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
