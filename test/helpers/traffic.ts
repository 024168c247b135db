import { setTimeout as delay } from 'node:timers/promises'
import { isErrorResponse } from './error-shape.js'
import { bearer, send, type Reply, type SendOptions } from './http.js'
import { activeToken, type Sender } from './queue.js'
import { range } from './lists.js'

export interface Outcome {
  route: string
  startedAt: number
  ms: number
  status?: number
  code?: string
  /** Network failure: the request got no answer. */
  error?: string
  shapeOk?: boolean
}

/** Sends requests and keeps one outcome per request, for checks over everything a test sent. */
export class Traffic {
  readonly outcomes: Outcome[] = []

  async send(baseUrl: string, method: string, path: string, options: SendOptions & { route?: string } = {}): Promise<Reply | undefined> {
    const route = options.route ?? `${method} ${path}`
    const startedAt = Date.now()
    try {
      const reply = await send(baseUrl, method, path, options)
      this.outcomes.push({
        route,
        startedAt,
        ms: Date.now() - startedAt,
        status: reply.status,
        code: typeof reply.body?.code === 'string' ? reply.body.code : undefined,
        shapeOk: reply.status < 400 || isErrorResponse(reply.status, reply.body),
      })
      return reply
    } catch (error) {
      this.outcomes.push({ route, startedAt, ms: Date.now() - startedAt, error: (error as NodeJS.ErrnoException).code ?? (error as Error).message })
      return undefined
    }
  }

  /** Every answer that was a 5xx other than a clean 503. */
  serverErrors(): Outcome[] {
    return this.outcomes.filter((o) => o.status !== undefined && o.status >= 500 && o.status !== 503)
  }

  /** Every 4xx/5xx answer without the one error shape. */
  badShapes(): Outcome[] {
    return this.outcomes.filter((o) => o.shapeOk === false)
  }

  /** "status code" (or "network error") -> count, for a t.comment. */
  summary(outcomes: Outcome[] = this.outcomes): string {
    const counts = new Map<string, number>()
    for (const o of outcomes) {
      const key = o.error ? `network ${o.error}` : `${o.status}${o.code ? ` ${o.code}` : ''}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    return [...counts].sort((a, b) => b[1] - a[1]).map(([key, n]) => `${key}: ${n}`).join(', ')
  }
}

/** Free seats handed out at random, so concurrent buyers sometimes collide on one. */
export class SeatPool {
  private readonly free: { concertDetailId: number; seatNo: number }[] = []

  constructor(details: number[], seatsPerDetail: number) {
    for (const concertDetailId of details) {
      for (let seatNo = 1; seatNo <= seatsPerDetail; seatNo++) this.free.push({ concertDetailId, seatNo })
    }
  }

  pick(): { concertDetailId: number; seatNo: number } {
    const seat = this.free[Math.floor(Math.random() * this.free.length)]
    if (!seat) throw new Error('no free seat left in the pool')
    return seat
  }

  taken(seat: { concertDetailId: number; seatNo: number }): void {
    const index = this.free.findIndex((s) => s.concertDetailId === seat.concertDetailId && s.seatNo === seat.seatNo)
    if (index >= 0) this.free.splice(index, 1)
  }
}

export interface Purchase {
  userId: number
  concertDetailId: number
  seatNo: number
  reservationId: number
  paymentId: number
  /** The payment answer was lost (network error or 503) at least once and the retry was answered. */
  retried: boolean
}

export interface BuyOptions {
  baseUrl: string
  userId: number
  seats: SeatPool
  traffic: Traffic
  deadline: number
  /** Per request; a client gives up on an answer after this long and retries. */
  timeoutMs?: number
}

/** An answer to act on: neither lost nor a 503, which a client retries. */
const answered = (reply: Reply | undefined): reply is Reply => reply !== undefined && reply.status !== 503
const leftTheQueue = (reply: Reply) => reply.status === 403 && /^NOT_(ACTIVE|IN_QUEUE)$/.test(reply.body.code)

/**
 * One user's whole booking, as a well-behaved client does it: join the queue, wait to be
 * admitted, hold a free seat, pay with an Idempotency-Key. A lost answer or a 503 is retried
 * (the key makes a retried payment safe); a queue that forgot the user (Redis restarted) is
 * joined again. Any other answer is a failure of the test.
 */
export async function buySeat({ baseUrl, userId, seats, traffic, deadline, timeoutMs = 5000 }: BuyOptions): Promise<Purchase> {
  const via: Sender = (base, method, path, options) => traffic.send(base, method, path, { ...options, timeoutMs })
  const admitted = () => activeToken(baseUrl, userId, { via, deadline })
  const unexpected = (what: string, reply: Reply) =>
    new Error(`user ${userId} ${what}: unexpected ${reply.status} ${JSON.stringify(reply.body)}`)
  let token = await admitted()
  let seat: { concertDetailId: number; seatNo: number } | undefined
  let reservationId = 0
  let lostPayAnswers = 0

  while (Date.now() < deadline) {
    if (!reservationId) {
      seat ??= seats.pick()
      const reply = await via(baseUrl, 'PATCH', '/concert/seat', { body: { userId, ...seat }, headers: bearer(token) })
      if (!answered(reply)) await delay(50)
      else if (reply.status === 200) {
        seats.taken(seat)
        reservationId = reply.body.reservationId
      } else if (reply.status === 409 && reply.body.code === 'SEAT_TAKEN') {
        seats.taken(seat)
        seat = undefined
      } else if (leftTheQueue(reply)) token = await admitted()
      else throw unexpected(`holding seat ${JSON.stringify(seat)}`, reply)
    } else {
      const reply = await via(baseUrl, 'POST', '/concert/reservation/days', {
        body: { userId, ...seat },
        headers: { ...bearer(token), 'idempotency-key': `buy-${userId}` },
      })
      if (!answered(reply)) {
        lostPayAnswers++
        await delay(50)
      } else if (reply.status === 200) {
        if (reply.body.reservationId !== reservationId) throw unexpected('paying for its own hold', reply)
        return { userId, ...seat!, reservationId, paymentId: reply.body.paymentId, retried: lostPayAnswers > 0 }
      } else if (leftTheQueue(reply)) token = await admitted()
      else throw unexpected(`paying for seat ${JSON.stringify(seat)}`, reply)
    }
  }
  throw new Error(`user ${userId} did not finish booking before the deadline (${reservationId ? 'paying' : 'holding'})`)
}

/**
 * Users 1..`count` each buying a seat at once, left running in the background so that a test can
 * do its fault in the middle; `paid()` counts the buyers done so far.
 */
export function buyersInBackground(count: number, options: Omit<BuyOptions, 'userId'>): { paid: () => number; purchases: Promise<Purchase[]> } {
  let paid = 0
  const purchases = Promise.all(
    range(1, count).map(async (userId) => {
      const purchase = await buySeat({ ...options, userId })
      paid++
      return purchase
    }),
  )
  return { paid: () => paid, purchases }
}
