import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { SEED_CONCERT_ID } from '../db/seed.js'
import { AppError } from '../plugins/errors.js'
import { assertIdentity } from '../plugins/identity.js'
import { perUserRateLimit } from '../plugins/rate-limit.js'
import { QUEUE_PATH, Standing, Ticket, joinSchema, leaveSchema, standingSchema } from './schemas.js'

const queueRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Ticket)
  app.addSchema(Standing)
  const { queue, queueCatalog: catalog } = app
  const notInQueue = () => new AppError(404, 'NOT_IN_QUEUE', 'Not in the queue: join it with POST /concert/wait')

  const joinLimit = perUserRateLimit(app.config.RATE_LIMIT_WAIT_PER_MIN)
  // The front door of a rush: Redis only, no MySQL query per join (the catalog knows the users
  // and concerts, see catalog.ts).
  app.post(QUEUE_PATH, { schema: joinSchema, preHandler: app.requireIdentity, config: { rateLimit: joinLimit } }, async (request) => {
    const { userId, concertId = SEED_CONCERT_ID } = request.body
    assertIdentity(request, userId)
    if (!(await catalog.knowsUser(userId))) throw new AppError(404, 'USER_NOT_FOUND', `User ${userId} not found`)
    // An unknown concert may only mean Redis lost the catalog.
    const place = await catalog.askAgainIfMissing(() => queue.enqueue(userId, concertId))
    if (!place) throw new AppError(404, 'CONCERT_NOT_FOUND', `Concert ${concertId} not found`)
    return { token: app.signQueueToken(userId, concertId), ...place }
  })

  app.get(QUEUE_PATH, { schema: standingSchema, preHandler: app.authenticate }, async (request) => {
    const standing = await queue.heartbeat(request.authUserId, request.queueConcertId ?? SEED_CONCERT_ID)
    if (standing.status === 'NONE') throw notInQueue()
    return { userId: request.authUserId, ...standing }
  })

  app.delete(QUEUE_PATH, { schema: leaveSchema, preHandler: app.authenticate }, async (request, reply) => {
    await queue.leave(request.authUserId, request.queueConcertId ?? SEED_CONCERT_ID)
    return reply.code(204).send(null)
  })
}

export default queueRoutes
