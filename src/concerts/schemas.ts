import { Type, type Static } from '@sinclair/typebox'
import { Id, errorResponses } from '../shared/schemas.js'
import { GZIP_MIN_BYTES } from './content-coding.js'

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

/** Only the seat numbers still free, for clients that poll a large hall (`?view=available`). */
export const AvailableSeats = Type.Object(
  {
    concertDetailId: Type.Integer(),
    totalSeats: Type.Integer({ description: 'Seats of the option, free or not' }),
    available: Type.Array(Type.Integer(), { description: 'Numbers of the seats free to hold, ascending' }),
  },
  { $id: 'AvailableSeats', title: 'AvailableSeats' },
)
export type AvailableSeats = Static<typeof AvailableSeats>

export const SeatMapQuery = Type.Object({
  view: Type.Union([Type.Literal('full'), Type.Literal('available')], {
    default: 'full',
    description: 'full: every seat with its status; available: only the free seat numbers',
  }),
})
export type SeatMapView = Static<typeof SeatMapQuery>['view']

/** The full seat map: every seat of the option in seat order. */
export const SeatMap = Type.Array(Type.Ref('SeatView'))
/** A concert's dated options. */
export const ConcertOptions = Type.Array(Type.Ref('ConcertOption'))

const security = [{ queueToken: [] }]
const notModified = Type.Null({ description: 'Unchanged since the ETag sent in If-None-Match' })
const pollHeaders = Type.Object({
  'if-none-match': Type.Optional(Type.String({ description: 'The ETag of the copy the client has' })),
  'accept-encoding': Type.Optional(Type.String({ description: `Where gzip is acceptable, bodies of ${GZIP_MIN_BYTES} bytes and more come gzipped` })),
})
// The body schemas describe the JSON once decoded; how it travels is said here.
const pollDescription =
  `Cached bytes with a strong ETag, answered 304 to If-None-Match while unchanged. Clients that accept gzip get bodies of ${GZIP_MIN_BYTES} bytes ` +
  'and more gzipped (Content-Encoding: gzip) under an ETag of their own: the identity ETag with -gzip inside the quotes. Either ETag ' +
  'of the current body gets the 304, the gzip one only while gzip is acceptable. Vary: Accept-Encoding.'

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
  response: { 200: ConcertOptions, ...errorResponses(400, 404) },
}

export const bookableDaysSchema = {
  tags: ['concerts'],
  summary: 'Dated options that still have free seats (active users only; ETag, 304 when unchanged)',
  description: pollDescription,
  security,
  params: ConcertParams,
  headers: pollHeaders,
  response: { 200: ConcertOptions, 304: notModified, ...errorResponses(400, 401, 403, 404) },
}

export const seatsSchema = {
  tags: ['concerts'],
  summary: 'The seat map of one dated option (active users only; ETag, 304 when unchanged)',
  description: pollDescription,
  security,
  params: DetailParams,
  querystring: SeatMapQuery,
  headers: pollHeaders,
  response: { 200: Type.Union([SeatMap, Type.Ref('AvailableSeats')]), 304: notModified, ...errorResponses(400, 401, 403, 404) },
}
