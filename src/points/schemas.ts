import { Type, type Static } from '@sinclair/typebox'
import { ClassTag, Id, IdempotencyHeaders, errorResponses } from '../shared/schemas.js'

const UserParams = Type.Object({ userId: Id('User id') })

export const PointBalance = Type.Object(
  { userId: Type.Integer(), point: Type.Integer({ minimum: 0 }) },
  { $id: 'PointBalance', title: 'PointBalance' },
)
export type PointBalance = Static<typeof PointBalance>

function chargeBody(maxCharge: number) {
  return Type.Object(
    {
      userId: Id('User to charge'),
      charge: Type.Integer({ minimum: 1, maximum: maxCharge, description: `Points to add, 1..${maxCharge}` }),
      '@class': ClassTag,
    },
    { additionalProperties: false },
  )
}

export const getPointSchema = {
  tags: ['points'],
  summary: "A user's point balance",
  params: UserParams,
  response: { 200: Type.Ref('PointBalance'), ...errorResponses(400, 401, 403, 404) },
}

export function chargePointSchema(maxCharge: number) {
  return {
    tags: ['points'],
    summary: 'Charge points; writes a history row; Idempotency-Key makes a retry safe',
    headers: IdempotencyHeaders,
    body: chargeBody(maxCharge),
    response: { 200: Type.Ref('PointBalance'), ...errorResponses(400, 401, 403, 404, 409, 415, 422) },
  }
}
