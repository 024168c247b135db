import { Type, type Static } from '@sinclair/typebox'
import { Id, errorResponses } from '../shared/schemas.js'

export const ConcertParams = Type.Object({ concertId: Id('Concert id') })
export const DetailParams = Type.Object({ concertDetailId: Id('Dated option (concert detail) id') })

export const Concert = Type.Object(
  {
    concertId: Type.Integer(),
    title: Type.String(),
    artist: Type.String(),
    venue: Type.String(),
    saleOpensAt: Type.String({ format: 'date-time', description: "When the sale opens: joins before it wait in the queue's pre-queue" }),
  },
  { $id: 'Concert', title: 'Concert' },
)
export type Concert = Static<typeof Concert>

export const ConcertOption = Type.Object(
  {
    concertDetailId: Type.Integer(),
    date: Type.String({ format: 'date-time' }),
    price: Type.Integer(),
    totalSeats: Type.Integer(),
    availableSeats: Type.Integer(),
  },
  { $id: 'ConcertOption', title: 'ConcertOption' },
)
export type ConcertOption = Static<typeof ConcertOption>

export const SeatView = Type.Object(
  { seatNo: Type.Integer(), status: Type.Union([Type.Literal('AVAILABLE'), Type.Literal('HELD'), Type.Literal('SOLD')]) },
  { $id: 'SeatView', title: 'SeatView' },
)
export type SeatView = Static<typeof SeatView>

const security = [{ queueToken: [] }]
const options = Type.Array(Type.Ref('ConcertOption'))

export const concertSchema = {
  tags: ['concerts'],
  summary: 'One concert',
  params: ConcertParams,
  response: { 200: Type.Ref('Concert'), ...errorResponses(400, 404) },
}

export const optionsSchema = {
  tags: ['concerts'],
  summary: "A concert's dated options with seat counts (cached for at most CONCERT_CACHE_MS)",
  params: ConcertParams,
  response: { 200: options, ...errorResponses(400, 404) },
}

export const bookableDaysSchema = {
  tags: ['concerts'],
  summary: 'Dated options that still have free seats (active users only)',
  security,
  params: ConcertParams,
  response: { 200: options, ...errorResponses(400, 401, 403, 404) },
}

export const seatsSchema = {
  tags: ['concerts'],
  summary: 'The seat map of one dated option (active users only)',
  security,
  params: DetailParams,
  response: { 200: Type.Array(Type.Ref('SeatView')), ...errorResponses(400, 401, 403, 404) },
}
