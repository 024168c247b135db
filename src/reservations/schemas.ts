import { Type, type Static } from '@sinclair/typebox'
import { ClassTag, Id, IdempotencyHeaders, errorResponses } from '../shared/schemas.js'

const SeatBody = Type.Object(
  {
    userId: Id('The caller; must match the token'),
    concertDetailId: Id('Dated option'),
    seatNo: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Seat number' }),
    '@class': ClassTag,
  },
  { additionalProperties: false },
)
/** Which seat, for whom: the body without its ignored type tag. */
export type SeatRef = Omit<Static<typeof SeatBody>, '@class'>

export const Hold = Type.Object(
  {
    reservationId: Type.Integer(),
    concertDetailId: Type.Integer(),
    seatNo: Type.Integer(),
    heldUntil: Type.String({ format: 'date-time' }),
    price: Type.Integer(),
  },
  { $id: 'Hold', title: 'Hold' },
)
export type Hold = Static<typeof Hold>

export const Payment = Type.Object(
  { reservationId: Type.Integer(), paymentId: Type.Integer(), amount: Type.Integer(), point: Type.Integer({ description: 'Balance after paying' }) },
  { $id: 'Payment', title: 'Payment' },
)
export type Payment = Static<typeof Payment>

const security = [{ queueToken: [] }]

export const holdSchema = {
  tags: ['reservations'],
  summary: 'Hold a seat for HOLD_TTL_MS (active users only; at most MAX_HOLDS_PER_USER live holds per concert)',
  security,
  body: SeatBody,
  response: { 200: Type.Ref('Hold'), ...errorResponses(400, 401, 403, 404, 409, 415, 429, 503) },
}

export const paySchema = {
  tags: ['reservations'],
  summary: "Pay for a held seat with points; releases the caller's queue slot once no hold is left",
  security,
  headers: IdempotencyHeaders,
  body: SeatBody,
  response: { 200: Type.Ref('Payment'), ...errorResponses(400, 401, 402, 403, 404, 409, 415, 422, 429, 503) },
}
