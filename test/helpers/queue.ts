import { setTimeout as delay } from 'node:timers/promises'
import { bearer, send, type Reply, type SendOptions } from './http.js'
import { eachConcurrently } from './lists.js'
import { identityToken } from './jwt.js'

/** Settings under which the admitter lets everyone in at once, for tests of what comes after. */
export const OPEN_QUEUE = { MAX_ACTIVE: 10_000, ADMIT_BATCH: 10_000, ADMIT_INTERVAL_MS: 20 }

/** How the requests go out: `send`, or a sender that records them; undefined is an answer lost. */
export type Sender = (baseUrl: string, method: string, path: string, options: SendOptions) => Promise<Reply | undefined>

export interface JoinOptions {
  /** The concert whose queue to join; the server's default (concert 1) when absent. */
  concertId?: number
  /** Extra body fields (the report's `@class` tag, or junk for a test of refusals). */
  body?: Record<string, unknown>
  timeoutMs?: number
}

/**
 * The join request for `userId`: the one place the tests and the lab build it, so a change of
 * the join's credentials is one edit. For `send`, a recording sender, or `app.inject`.
 */
export function joinRequest(userId: number, { concertId, body, timeoutMs }: JoinOptions = {}) {
  const payload = { userId, ...(concertId === undefined ? {} : { concertId }), ...body }
  const headers = bearer(identityToken(userId))
  return { method: 'POST', path: '/concert/wait', options: { body: payload, headers, timeoutMs } satisfies SendOptions }
}

/** POST /concert/wait as `userId` (see `joinRequest`). */
export function joinQueue(baseUrl: string, userId: number, options: JoinOptions = {}): Promise<Reply> {
  const { method, path, options: sendOptions } = joinRequest(userId, options)
  return send(baseUrl, method, path, sendOptions)
}

export interface AdmitOptions {
  /** The concert whose queue to join (default: the server's default, concert 1). */
  concertId?: number
  /** Give up this long from now (default 10 s)... */
  timeoutMs?: number
  /** ... or at this time, when the caller has a deadline of its own. */
  deadline?: number
  via?: Sender
  /** Users joining, and then waiting, at once. */
  concurrency?: number
}

/**
 * Joins the queue as every user, then waits until the admitter has let each of them in; answers
 * their tokens, in order. As a patient client does it: a lost answer or a 503 is asked again, and
 * a user the queue forgot (Redis restarted) joins again. Any other refusal throws.
 */
export async function activeTokens(baseUrl: string, userIds: number[], options: AdmitOptions = {}): Promise<string[]> {
  const { via = send, concurrency = 32, concertId } = options
  const deadline = options.deadline ?? Date.now() + (options.timeoutMs ?? 10_000)
  const ask = async (userId: number, method: string, path: string, call: () => Promise<Reply | undefined>): Promise<Reply> => {
    for (;;) {
      const reply = await call()
      if (reply !== undefined && reply.status !== 503) return reply
      if (Date.now() > deadline) throw new Error(`user ${userId}: ${method} ${path} still ${reply ? `answered ${reply.status}` : 'unanswered'} at the deadline`)
      await delay(50)
    }
  }
  const join = async (userId: number): Promise<{ token: string; status: string }> => {
    const { method, path, options: sendOptions } = joinRequest(userId, { concertId })
    const joined = await ask(userId, method, path, () => via(baseUrl, method, path, sendOptions))
    if (joined.status !== 200) throw new Error(`user ${userId} could not join the queue: ${joined.status} ${JSON.stringify(joined.body)}`)
    return joined.body
  }
  const joined = await eachConcurrently(userIds, concurrency, async (userId) => ({ userId, ...(await join(userId)) }))
  return eachConcurrently(joined, concurrency, async ({ userId, token, status }) => {
    while (status !== 'ACTIVE') {
      if (Date.now() > deadline) throw new Error(`user ${userId} was not admitted before the deadline`)
      await delay(20)
      const standing = await ask(userId, 'GET', '/concert/wait', () => via(baseUrl, 'GET', '/concert/wait', { headers: bearer(token) }))
      if (standing.status === 404) ({ token, status } = await join(userId))
      else if (standing.status === 200) status = standing.body.status
      else throw new Error(`user ${userId} waiting in the queue: ${standing.status} ${JSON.stringify(standing.body)}`)
    }
    return token
  })
}

/** One user's token once the queue has admitted them (see `activeTokens`). */
export async function activeToken(baseUrl: string, userId: number, options: AdmitOptions = {}): Promise<string> {
  const [token] = await activeTokens(baseUrl, [userId], options)
  return token!
}

/** An ADMIN_TOKEN for tests of the operator's controls. */
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef'

/** PATCH /admin/queues/:concertId as the operator: a live change of one concert's queue. */
export function changeQueue(baseUrl: string, concertId: number, change: Record<string, unknown>, adminToken = TEST_ADMIN_TOKEN): Promise<Reply> {
  return send(baseUrl, 'PATCH', `/admin/queues/${concertId}`, { body: change, headers: bearer(adminToken) })
}
