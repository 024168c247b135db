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
    const pool = createMysqlPool(app.config.MYSQL_URL, app.config.MYSQL_POOL_SIZE)
    const db = createDb(app.config.MYSQL_URL, app.config.MYSQL_POOL_SIZE, pool)
    app.decorate('db', db)
    app.decorate('dbPool', pool)
    app.addHook('onClose', async () => {
      await db.destroy()
    })
  },
  { name: 'db', dependencies: ['config'] },
)
