import t, { type Test } from 'tap'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRefusalPacer } from '../src/plugins/pressure.js'
import { send, type Reply } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

const refusal = Buffer.from(JSON.stringify({ code: 'SERVICE_OVERLOADED' }))

/**
 * An HTTP server that refuses every request through a pacer, as the worker's door does while it
 * is overloaded. `told` counts the refusals written, `closed` the requests whose client left.
 */
async function refusingServer(t: Test, perSecond: number, maxHoldMs?: number) {
  const counts = { told: 0, closed: 0 }
  const pacer = createRefusalPacer(
    perSecond,
    (response) => {
      counts.told++
      response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', 'content-length': refusal.byteLength }).end(refusal)
    },
    maxHoldMs,
  )
  const server = createServer((_request, response: ServerResponse) => {
    response.on('close', () => {
      if (!response.writableFinished) counts.closed++
    })
    pacer.refuse(response)
  })
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening))
  t.teardown(() => {
    pacer.flush()
    server.closeAllConnections()
    return new Promise<void>((closed) => server.close(() => closed()))
  })
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pacer, counts }
}

/** Sends `n` requests at once; each answer with the ms from the burst's start to its arrival. */
async function burst(baseUrl: string, n: number): Promise<Array<{ res: Reply; ms: number }>> {
  const started = performance.now()
  return Promise.all(
    Array.from({ length: n }, async () => {
      const res = await send(baseUrl, 'GET', '/', { identity: false })
      return { res, ms: performance.now() - started }
    }),
  )
}

t.test('refusals beyond the rate are held and told at the rate, and none is lost', async (t) => {
  const perSecond = 20
  const { baseUrl, pacer, counts } = await refusingServer(t, perSecond, 60_000)
  const answers = await burst(baseUrl, 100)
  t.same(
    answers.map(({ res }) => res.status),
    Array(100).fill(503),
    'every request is told 503',
  )
  t.ok(
    answers.every(({ res }) => res.body.code === 'SERVICE_OVERLOADED' && res.headers['retry-after'] === '1'),
    'each with its body and Retry-After',
  )
  t.equal(counts.told, 100, 'one refusal written per request')
  t.equal(pacer.held, 0, 'nobody is left held')
  // The bucket starts with a second's worth and refills at the rate, so however fast or slow the
  // machine, no more than that many answers can have arrived by a given time.
  const within = (ms: number) => answers.filter((answer) => answer.ms <= ms).length
  for (const ms of [500, 2000]) {
    const most = perSecond + Math.ceil((perSecond * ms) / 1000)
    t.ok(within(ms) <= most, `${within(ms)} answers within ${ms} ms, at most ${most}`)
  }
  t.comment(`the last refusal arrived after ${Math.round(Math.max(...answers.map(({ ms }) => ms)))} ms`)
})

t.test('a refusal is held at most the longest hold, whatever the rate', async (t) => {
  const maxHoldMs = 300
  const { baseUrl } = await refusingServer(t, 1, maxHoldMs)
  // At one a second, 30 refusals would take 29 s and most clients would give up (10 s); held
  // at most 300 ms each, every one of them is told.
  const answers = await burst(baseUrl, 30)
  t.same(
    answers.map(({ res }) => res.status),
    Array(30).fill(503),
  )
  // One token at the start, the next after a second: everyone else waited out the hold.
  const early = answers.filter(({ ms }) => ms < maxHoldMs).length
  t.ok(early <= 1, `${early} answered before the hold ran out`)
})

t.test('a client that left while held is not written to; flushing tells everyone still held', async (t) => {
  // Below one a second the bucket never holds a whole token: every refusal is held.
  const { baseUrl, pacer, counts } = await refusingServer(t, 0.5, 60_000)
  const leaver = send(baseUrl, 'GET', '/', { identity: false, timeoutMs: 200 })
  await waitFor('the first to be held', () => pacer.held === 1)
  const stayer = send(baseUrl, 'GET', '/', { identity: false })
  await waitFor('the second to be held', () => pacer.held === 2)
  await t.rejects(leaver, /timed out/)
  await waitFor('the server to see the client leave', () => counts.closed === 1)
  t.equal(pacer.held, 2, 'both are still held')

  pacer.flush()
  t.equal(pacer.held, 0, 'flushing holds nobody')
  t.equal(counts.told, 1, 'the client that left was not written to')
  t.equal((await stayer).status, 503, 'the one still waiting is told')
})

t.test('a rate of 0 answers every refusal at once', async (t) => {
  const { baseUrl, pacer, counts } = await refusingServer(t, 0, 60_000)
  const answers = await burst(baseUrl, 50)
  t.same(
    answers.map(({ res }) => res.status),
    Array(50).fill(503),
  )
  t.equal(counts.told, 50)
  t.equal(pacer.held, 0, 'nobody was held')
})
