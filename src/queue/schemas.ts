import { Type, type Static, type TProperties } from '@sinclair/typebox'
import { SEED_CONCERT_ID } from '../db/seed.js'
import { ClassTag, Id, errorResponses } from '../shared/schemas.js'

/** The waiting room's one path: join (POST), poll (GET) and leave (DELETE), all Redis only. */
export const QUEUE_PATH = '/concert/wait'

const JoinBody = Type.Object(
  {
    userId: Id('User joining the queue'),
    concertId: Type.Optional(Id(`Concert whose queue to join (default ${SEED_CONCERT_ID})`)),
    '@class': ClassTag,
  },
  { additionalProperties: false },
)

const ConcertId = Type.Integer({ description: 'The concert whose queue this is' })
const Position = Type.Integer({ minimum: 0, description: '1-based place in line while waiting; 0 once active, or in the pre-queue (drawn at the opening)' })
const Eta = Type.Integer({ minimum: 0, description: 'Estimated seconds until admission (in the pre-queue: until the opening)' })

/**
 * Where a user stands in one concert's queue, one object per state, told apart by `status`:
 * in the pre-queue before the sale opens, in line, or admitted. `extra` adds the fields of the
 * answer that carries it (the token, the user).
 */
function place<T extends TProperties>(extra: T) {
  const common = { concertId: ConcertId, position: Position, etaSeconds: Eta }
  return Type.Union([
    Type.Object({
      ...extra,
      status: Type.Literal('PREQUEUE'),
      ...common,
      opensAt: Type.String({ format: 'date-time', description: 'When the sale opens and the pre-queue is shuffled into the line' }),
    }),
    Type.Object({ ...extra, status: Type.Literal('WAITING'), ...common }),
    Type.Object({ ...extra, status: Type.Literal('ACTIVE'), ...common }),
  ])
}

export const Place = place({})
export type Place = Static<typeof Place>

export const Ticket = Type.Union(place({ token: Type.String({ description: 'Send as Authorization: Bearer <token>' }) }).anyOf, {
  $id: 'QueueTicket',
  title: 'QueueTicket',
})

export const Standing = Type.Union(place({ userId: Type.Integer() }).anyOf, { $id: 'QueueStanding', title: 'QueueStanding' })
export type Standing = Static<typeof Standing>

const security = [{ queueToken: [] }]

export const joinSchema = {
  tags: ['queue'],
  summary: "Join a concert's waiting queue (idempotent per user and concert); answers a token bound to both",
  body: JoinBody,
  response: { 200: Type.Ref('QueueTicket'), ...errorResponses(400, 401, 403, 404, 415, 429, 503) },
}

export const standingSchema = {
  tags: ['queue'],
  summary: "The caller's place in the token's queue; a waiter's call keeps the place (WAITING_TTL_MS)",
  security,
  response: { 200: Type.Ref('QueueStanding'), ...errorResponses(401, 404, 503) },
}

export const leaveSchema = {
  tags: ['queue'],
  summary: "Leave the token's queue (or give up an active slot)",
  security,
  response: { 204: Type.Null(), ...errorResponses(401, 503) },
}
