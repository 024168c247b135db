import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type { Pool } from 'mysql2'
import { createDb, createMysqlPool } from '../db/connection.js'
import type { Database } from '../db/schema.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    /** The pool under `db`, for its usage metrics. */
    dbPool: Pool
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
    app.addHook('onClose', async () => {
      await db.destroy()
    })
  },
  { name: 'db', dependencies: ['config'] },
)
