import { bearer } from '../../test/helpers/http.js'
import type { Context, HttpRequest, RequestStep } from './autocannon.js'
import { randomInt, randomUser, type Fixture, type Hold } from './fixture.js'

export interface Endpoint {
  /** Method and path as the API documents it. */
  name: string
  /** Tells apart two loads of one endpoint ("large hall"). */
  variant?: string
  /** Statuses that are the right answer under this load (a seat someone else took), not failures. */
  expected: number[]
  /** A hot cached read: also compared with the hello-world ceiling. */
  hot?: boolean
  /** Paying releases the payer's queue slot: users must be admitted again after this endpoint. */
  releasesSlots?: boolean
  /** The request step; `holds` collects the holds the hold step won, which the payment step pays. */
  step: (fixture: Fixture, holds: Hold[]) => RequestStep
  /** When set, the run sends exactly this many requests instead of running for a duration. */
  requestCount?: (fixture: Fixture, holds: Hold[]) => number | undefined
}

export const endpointTitle = (endpoint: Pick<Endpoint, 'name' | 'variant'>) =>
  endpoint.variant ? `${endpoint.name} (${endpoint.variant})` : endpoint.name

const auth = (fixture: Fixture, userId: number) => bearer(fixture.tokens[userId]!)
/** The hall is another concert, whose queue gives its own tokens. */
const hallAuth = (fixture: Fixture, userId: number) => bearer(fixture.hallTokens[userId]!)
const identity = (fixture: Fixture, userId: number) => bearer(fixture.identities[userId]!)

/** A call that acts for a random user, with that user's identity token. */
function asRandomUser(fixture: Fixture, request: (userId: number) => HttpRequest): HttpRequest {
  const userId = randomUser(fixture)
  return { ...request(userId), headers: identity(fixture, userId) }
}

const get = (path: string, headers?: Record<string, string>): HttpRequest => ({ method: 'GET', path, headers })

const randomDetail = (fixture: Fixture) => fixture.concertDetailIds[randomInt(fixture.concertDetailIds.length) - 1]!

/** What every browser sends: the seat maps' gzip copies instead of their JSON. */
const acceptGzip = { 'accept-encoding': 'gzip, deflate, br' }

function seatRequest(method: 'PATCH' | 'POST', path: string, fixture: Fixture, hold: Hold): HttpRequest {
  return { method, path, headers: hallAuth(fixture, hold.userId), json: hold }
}

/** A hall seat for a random user: what holds and payments fall back to once the planned ones are used. */
const randomHold = (fixture: Fixture): Hold => ({
  userId: randomUser(fixture),
  concertDetailId: fixture.hall.concertDetailId,
  seatNo: randomInt(fixture.hall.seats),
})

/** Steps the lab's workloads are built from. */
export const steps = {
  concert: (fixture: Fixture): RequestStep => ({ next: () => get(`/concert/${fixture.concertId}`) }),
  options: (fixture: Fixture): RequestStep => ({ next: () => get(`/concerts/${fixture.concertId}`) }),
  point: (fixture: Fixture): RequestStep => ({ next: () => asRandomUser(fixture, (userId) => get(`/point/${userId}`)) }),
  charge: (fixture: Fixture): RequestStep => ({
    next: () => asRandomUser(fixture, (userId) => ({ method: 'PATCH', path: '/point', json: { userId, charge: 1000 } })),
  }),
  join: (fixture: Fixture): RequestStep => ({
    next: () => asRandomUser(fixture, (userId) => ({ method: 'POST', path: '/concert/wait', json: { userId } })),
  }),
  seatMap: (fixture: Fixture, headers: Record<string, string> = {}): RequestStep => ({
    next: () => get(`/concert/seats/${randomDetail(fixture)}`, { ...auth(fixture, randomUser(fixture)), ...headers }),
  }),
  hallSeatMap: (fixture: Fixture, view = 'full', headers: Record<string, string> = {}): RequestStep => ({
    next: () => get(`/concert/seats/${fixture.hall.concertDetailId}?view=${view}`, { ...hallAuth(fixture, randomUser(fixture)), ...headers }),
  }),
  /** A poller that already has the hall's map: it sends back the ETag it last saw. */
  hallSeatMapRevalidated: (fixture: Fixture): RequestStep => {
    let etag: string | undefined
    return {
      next: () => get(`/concert/seats/${fixture.hall.concertDetailId}`, { ...hallAuth(fixture, randomUser(fixture)), ...(etag && { 'if-none-match': etag }) }),
      onResponse: (status, _body, _context, headers) => {
        if (status === 200) etag = headers.etag
      },
    }
  },
}

/** Every endpoint of the API, each with requests that carry random real ids and real tokens. */
export const endpoints: Endpoint[] = [
  { name: 'GET /point/:userId', expected: [], step: steps.point },
  { name: 'PATCH /point', expected: [], step: steps.charge },
  { name: 'GET /concert/:concertId', expected: [], hot: true, step: steps.concert },
  { name: 'GET /concerts/:concertId', expected: [], hot: true, step: steps.options },
  { name: 'POST /concert/wait', expected: [], step: steps.join },
  {
    name: 'GET /concert/wait',
    expected: [],
    step: (fixture) => ({ next: () => get('/concert/wait', auth(fixture, randomUser(fixture))) }),
  },
  {
    name: 'GET /concert/reservation/days/:concertId',
    expected: [],
    hot: true,
    step: (fixture) => ({ next: () => get(`/concert/reservation/days/${fixture.concertId}`, auth(fixture, randomUser(fixture))) }),
  },
  { name: 'GET /concert/seats/:concertDetailId', expected: [], hot: true, step: (fixture) => steps.seatMap(fixture) },
  { name: 'GET /concert/seats/:concertDetailId', variant: 'gzip', expected: [], hot: true, step: (fixture) => steps.seatMap(fixture, acceptGzip) },
  { name: 'GET /concert/seats/:concertDetailId', variant: 'large hall', expected: [], hot: true, step: (fixture) => steps.hallSeatMap(fixture) },
  { name: 'GET /concert/seats/:concertDetailId', variant: 'large hall, gzip', expected: [], hot: true, step: (fixture) => steps.hallSeatMap(fixture, 'full', acceptGzip) },
  { name: 'GET /concert/seats/:concertDetailId', variant: 'large hall, ?view=available', expected: [], hot: true, step: (fixture) => steps.hallSeatMap(fixture, 'available') },
  // 304s are not throughput (not 2xx): this row says how cheap revalidating an unchanged map is.
  { name: 'GET /concert/seats/:concertDetailId', variant: 'large hall, If-None-Match', expected: [304], step: steps.hallSeatMapRevalidated },
  {
    name: 'PATCH /concert/seat',
    // Holds go to free hall seats; once those run out (a hall too small for the run), to taken ones.
    expected: [409],
    step: (fixture, holds) => ({
      next: (context: Context) => {
        // Users who hold nothing yet go first, so each hold recorded for payment has its own payer.
        const firstHoldOf = fixture.usersWithoutHold.pop()
        const seat = fixture.freeSeats.pop()
        const hold = seat ? { userId: firstHoldOf ?? randomUser(fixture), concertDetailId: seat[0], seatNo: seat[1] } : randomHold(fixture)
        context.hold = hold
        context.payable = firstHoldOf !== undefined
        return seatRequest('PATCH', '/concert/seat', fixture, hold)
      },
      onResponse: (status, _body, context) => {
        if (status === 200 && context.payable) holds.push(context.hold as Hold)
      },
    }),
  },
  {
    name: 'POST /concert/reservation/days',
    // Paying gives up the payer's slot, so each user pays once: exactly one payment per recorded
    // hold. Without recorded holds (the hold endpoint was not run) payments are refused: 409.
    expected: [409],
    releasesSlots: true,
    step: (fixture, holds) => ({ next: () => seatRequest('POST', '/concert/reservation/days', fixture, holds.pop() ?? randomHold(fixture)) }),
    requestCount: (_fixture, holds) => holds.length || undefined,
  },
]

/** The endpoints named (by title), in the order above, which runs the hold step before payment. */
export function findEndpoints(titles: string[]): Endpoint[] {
  const unknown = titles.filter((title) => !endpoints.some((endpoint) => endpointTitle(endpoint) === title))
  if (unknown.length) throw new Error(`Unknown endpoint "${unknown[0]}"; known: ${endpoints.map(endpointTitle).join(', ')}`)
  return titles.length ? endpoints.filter((endpoint) => titles.includes(endpointTitle(endpoint))) : endpoints
}
