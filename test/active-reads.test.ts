import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { appInstances } from './helpers/app.js'
import { bearer, send, type Reply } from './helpers/http.js'
import { OPEN_QUEUE, activeTokens } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

const MEMO_MS = 600

const seatMap = (url: string, token: string) => send(url, 'GET', '/concert/seats/1', { headers: bearer(token) })
const days = (url: string, token: string) => send(url, 'GET', '/concert/reservation/days/1', { headers: bearer(token) })
const hold = (url: string, token: string, userId: number, seatNo: number) =>
  send(url, 'PATCH', '/concert/seat', { headers: bearer(token), body: { userId, concertDetailId: 1, seatNo } })

/** Counts the queue checks an instance asks Redis for. */
function countChecks(app: FastifyInstance): () => number {
  let calls = 0
  const verifyAndTouch = app.queue.verifyAndTouch
  app.queue.verifyAndTouch = (...args) => {
    calls++
    return verifyAndTouch(...args)
  }
  return () => calls
}

interface Read {
  sentAt: number
  status: number
  code?: string
}

/** Reads seat maps and days through both instances, one after another, until `until` has passed. */
async function readUntil(urls: string[], token: string, until: number): Promise<Read[]> {
  const reads: Read[] = []
  for (let i = 0; Date.now() <= until; i++) {
    const sentAt = Date.now()
    const answer: Reply = await (i % 2 ? days : seatMap)(urls[i % urls.length]!, token)
    reads.push({ sentAt, status: answer.status, code: answer.body?.code })
  }
  return reads
}

/** The reads sent after `since` that were let through. */
const letThroughAfter = (reads: Read[], since: number) => reads.filter((read) => read.sentAt > since && read.status === 200)

t.test('reads reuse an ACTIVE answer for ACTIVE_READ_MEMO_MS; holds ask Redis every time', async (t) => {
  const { apps, urls } = await appInstances(t, { ...OPEN_QUEUE, ACTIVE_READ_MEMO_MS: MEMO_MS })
  const [token] = await activeTokens(urls[0]!, [1])
  const checks = countChecks(apps[1]!)

  const startedAt = Date.now()
  for (let i = 0; i < 20; i++) t.equal((await (i % 2 ? days : seatMap)(urls[1]!, token!)).status, 200)
  const elapsed = Date.now() - startedAt
  // One check per ACTIVE_READ_MEMO_MS at most (plus the first), however many reads.
  t.ok(checks() <= Math.ceil(elapsed / MEMO_MS) + 1, `20 reads in ${elapsed} ms asked Redis ${checks()} times`)

  const before = checks()
  for (const seatNo of [1, 2, 3]) t.equal((await hold(urls[1]!, token!, 1, seatNo)).status, 200, `hold of seat ${seatNo}`)
  t.equal(checks() - before, 3, 'each hold asked Redis')
})

t.test('a user who leaves the queue is refused holds at once and reads within ACTIVE_READ_MEMO_MS, on every instance', async (t) => {
  const { urls } = await appInstances(t, { ...OPEN_QUEUE, ACTIVE_READ_MEMO_MS: MEMO_MS })
  const [token] = await activeTokens(urls[0]!, [2])
  // Both instances have just let the user read.
  for (const url of urls) t.equal((await seatMap(url, token!)).status, 200)

  t.equal((await send(urls[0]!, 'DELETE', '/concert/wait', { headers: bearer(token!) })).status, 204)
  const leftAt = Date.now()
  const refusedHold = await hold(urls[1]!, token!, 2, 10)
  t.same([refusedHold.status, refusedHold.body.code], [403, 'NOT_IN_QUEUE'], 'a hold right after leaving is refused, on the other instance too')
  const sameInstance = await seatMap(urls[0]!, token!)
  t.same([sameInstance.status, sameInstance.body.code], [403, 'NOT_IN_QUEUE'], 'the instance that saw the leave refuses reads at once')

  const reads = await readUntil(urls, token!, leftAt + MEMO_MS + 300)
  t.ok(reads.some((read) => read.sentAt > leftAt + MEMO_MS), 'reads went on past the bound')
  t.same(letThroughAfter(reads, leftAt + MEMO_MS), [], `no read sent ${MEMO_MS} ms after the leave was let through`)
  t.same([...new Set(reads.filter((read) => read.status !== 200).map((read) => `${read.status} ${read.code}`))], ['403 NOT_IN_QUEUE'])
})

t.test('a user whose slot ends (ACTIVE_MAX_MS) is refused holds at once and reads within ACTIVE_READ_MEMO_MS', async (t) => {
  const activeMaxMs = 2000
  const { apps, urls } = await appInstances(t, { ...OPEN_QUEUE, ACTIVE_READ_MEMO_MS: MEMO_MS, ACTIVE_MAX_MS: activeMaxMs })
  const [token] = await activeTokens(urls[0]!, [3])
  const admittedAt = Number(await apps[0]!.redis.zscore(apps[0]!.queue.keys(1).admitted, '3'))
  const endsAt = admittedAt + activeMaxMs

  // Redis's clock and ours are the same host's. While the user keeps reading (each check sliding
  // nothing past ACTIVE_MAX_MS), a hold is sent just after the end: refused at once.
  const holdAtEnd = (async () => {
    await waitFor('the slot to have ended', () => Date.now() > endsAt + 10, { timeoutMs: 10_000, intervalMs: 2 })
    return hold(urls[1]!, token!, 3, 20)
  })()
  const reads = await readUntil(urls, token!, endsAt + MEMO_MS + 300)
  const refusedHold = await holdAtEnd
  t.same([refusedHold.status, refusedHold.body.code], [403, 'NOT_IN_QUEUE'], 'a hold just after the slot ended is refused')
  t.ok(reads.some((read) => read.status === 200), 'the user read while the slot lasted')
  t.same(letThroughAfter(reads, endsAt + MEMO_MS), [], `no read sent ${MEMO_MS} ms after the slot ended was let through`)
})
