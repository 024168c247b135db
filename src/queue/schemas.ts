import { Type, type Static } from '@sinclair/typebox'
import { ClassTag, Id, errorResponses } from '../shared/schemas.js'

const JoinBody = Type.Object({ userId: Id('User joining the queue'), '@class': ClassTag }, { additionalProperties: false })

const State = Type.Union([Type.Literal('WAITING'), Type.Literal('ACTIVE')])
const Position = Type.Integer({ minimum: 0, description: '1-based place in line while waiting; 0 once active' })
const Eta = Type.Integer({ minimum: 0, description: 'Estimated seconds until admission' })

export const Ticket = Type.Object(
  { token: Type.String({ description: 'Send as Authorization: Bearer <token>' }), status: State, position: Position, etaSeconds: Eta },
  { $id: 'QueueTicket', title: 'QueueTicket' },
)

export const Standing = Type.Object(
  { userId: Type.Integer(), status: State, position: Position, etaSeconds: Eta },
  { $id: 'QueueStanding', title: 'QueueStanding' },
)
export type Standing = Static<typeof Standing>

const security = [{ queueToken: [] }]

export const joinSchema = {
  tags: ['queue'],
  summary: 'Join the waiting queue (idempotent per user); answers a token bound to the user',
  body: JoinBody,
  response: { 200: Type.Ref('QueueTicket'), ...errorResponses(400, 401, 403, 404, 415, 429, 503) },
}

export const standingSchema = {
  tags: ['queue'],
  summary: "The caller's place in the queue",
  security,
  response: { 200: Type.Ref('QueueStanding'), ...errorResponses(401, 404, 503) },
}

export const leaveSchema = {
  tags: ['queue'],
  summary: 'Leave the queue (or give up an active slot)',
  security,
  response: { 204: Type.Null(), ...errorResponses(401, 503) },
}
