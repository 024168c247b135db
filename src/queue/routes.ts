import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AppError } from '../plugins/errors.js'
import { assertIdentity } from '../plugins/identity.js'
import { perUserRateLimit } from '../plugins/rate-limit.js'
import { createPointRepository } from '../points/repository.js'
import { Standing, Ticket, joinSchema, leaveSchema, standingSchema } from './schemas.js'

const queueRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Ticket)
  app.addSchema(Standing)
  const points = createPointRepository(app.db)

  const joinLimit = perUserRateLimit(app.config.RATE_LIMIT_WAIT_PER_MIN)
  app.post('/concert/wait', { schema: joinSchema, preHandler: app.requireIdentity, config: { rateLimit: joinLimit } }, async (request) => {
    const { userId } = request.body
    assertIdentity(request, userId)
    if (!(await points.exists(userId))) throw new AppError(404, 'USER_NOT_FOUND', `User ${userId} not found`)
    const standing = await app.queue.enqueue(userId)
    if (standing.status === 'NONE') throw new Error('enqueue returned no standing')
    return { token: app.signQueueToken(userId), ...standing }
  })

  app.get('/concert/wait', { schema: standingSchema, preHandler: app.authenticate }, async (request) => {
    const standing = await app.queue.status(request.authUserId)
    if (standing.status === 'NONE') throw new AppError(404, 'NOT_IN_QUEUE', 'Not in the queue: join it with POST /concert/wait')
    return { userId: request.authUserId, ...standing }
  })

  app.delete('/concert/wait', { schema: leaveSchema, preHandler: app.authenticate }, async (request, reply) => {
    await app.queue.leave(request.authUserId)
    return reply.code(204).send(null)
  })
}

export default queueRoutes
