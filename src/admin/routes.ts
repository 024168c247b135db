import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { AppError } from '../plugins/errors.js'
import { QueueReport, changeSchema, readSchema } from './schemas.js'

const digest = (text: string) => createHash('sha256').update(text).digest()

/**
 * The operator's controls of the waiting queues, behind `Authorization: Bearer <ADMIN_TOKEN>`.
 * Without ADMIN_TOKEN the routes do not exist (404). A change is stored in the concert's queue
 * hash in Redis, where every admit tick of every worker and host reads it.
 */
const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { ADMIN_TOKEN } = app.config
  if (!ADMIN_TOKEN) return
  app.addSchema(QueueReport)
  const expected = digest(ADMIN_TOKEN)
  const { queue, queueCatalog: catalog } = app

  // Digests of equal length, compared in constant time: neither the token nor its length leaks.
  const requireAdmin = async (request: FastifyRequest) => {
    const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization?.trim() ?? '')
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) {
      throw new AppError(401, 'ADMIN_TOKEN_INVALID', 'Send the admin token as Authorization: Bearer <ADMIN_TOKEN>')
    }
  }

  const report = async (concertId: number) => {
    // Redis may have lost the catalog (restarted): rebuilt once before calling the concert unknown.
    const view = await catalog.askAgainIfMissing(() => queue.view(concertId))
    if (!view) throw new AppError(404, 'CONCERT_NOT_FOUND', `Concert ${concertId} not found`)
    return { concertId, ...view }
  }

  app.get('/admin/queues/:concertId', { schema: readSchema, preHandler: requireAdmin }, async (request) => report(request.params.concertId))

  app.patch('/admin/queues/:concertId', { schema: changeSchema, preHandler: requireAdmin }, async (request) => {
    const { concertId } = request.params
    const change = request.body
    await report(concertId)
    const opensAt = change.saleOpensAt === undefined ? undefined : new Date(change.saleOpensAt)
    if (opensAt) {
      // The concert page shows it too; the queue reads its own copy below.
      await app.db.updateTable('concerts').set({ sale_opens_at: opensAt }).where('id', '=', concertId).execute()
    }
    const concert = queue.keys(concertId).concert
    const fields: Record<string, string | number> = {}
    if (change.paused !== undefined) fields.paused = change.paused ? 1 : 0
    if (change.maxActive !== undefined) fields.maxActive = change.maxActive
    if (change.admitBatch !== undefined) fields.admitBatch = change.admitBatch
    if (change.admitIntervalMs !== undefined) fields.admitIntervalMs = change.admitIntervalMs
    if (opensAt) fields.saleOpensAt = opensAt.getTime()
    const write = app.redis.multi().hset(concert, fields)
    // A sale moved into the future is not open: joins wait in the pre-queue again until then.
    if (opensAt && opensAt.getTime() > Date.now()) write.hdel(concert, 'openedAt')
    await write.exec()
    request.log.info({ concertId, change }, 'queue settings changed')
    return report(concertId)
  })
}

export default adminRoutes
