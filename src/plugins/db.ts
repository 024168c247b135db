import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { createDb } from '../db/connection.js'
import type { Database } from '../db/schema.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
  }
}

export default fp(
  async function db(app) {
    const db = createDb(app.config.MYSQL_URL, app.config.MYSQL_POOL_SIZE)
    app.decorate('db', db)
    app.addHook('onClose', async () => {
      await db.destroy()
    })
  },
  { name: 'db', dependencies: ['config'] },
)
