import { Type } from '@sinclair/typebox'
import { errorResponses } from '../shared/schemas.js'

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    mysql: Type.Literal('ok'),
    redis: Type.Literal('ok'),
    pid: Type.Integer({ description: 'The worker that answered' }),
  },
  { $id: 'Health', title: 'Health' },
)

export const healthSchema = {
  tags: ['health'],
  summary: 'Liveness plus a MySQL and Redis ping',
  response: { 200: Type.Ref('Health'), ...errorResponses(503) },
}
