import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AppError } from '../plugins/errors.js'
import { assertIdentity } from '../plugins/identity.js'
import { PointBalance, chargePointSchema, getPointSchema } from './schemas.js'
import { createPointRepository } from './repository.js'

const pointRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(PointBalance)
  const points = createPointRepository(app.db)
  const { MAX_BALANCE, MAX_CHARGE } = app.config

  app.get('/point/:userId', { schema: getPointSchema, preHandler: app.requireIdentity }, async (request) => {
    assertIdentity(request, request.params.userId)
    const balance = await points.balance(request.params.userId)
    if (!balance) throw new AppError(404, 'USER_NOT_FOUND', `User ${request.params.userId} not found`)
    return balance
  })

  app.patch('/point', { schema: chargePointSchema(MAX_CHARGE), preHandler: app.requireIdentity }, async (request) => {
    const { userId, charge } = request.body
    assertIdentity(request, userId)
    const balance = await app.idempotent(
      { scope: `charge:${userId}`, key: request.headers['idempotency-key'], request: { userId, charge } },
      (trx) => points.charge(trx, userId, charge, MAX_BALANCE),
    )
    request.log.info({ userId, charge, point: balance.point }, 'points charged')
    return balance
  })
}

export default pointRoutes
