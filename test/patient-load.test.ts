import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { runPatientLoad } from '../bench/lib/patient-load.js'

/** A server on a free port whose every answer is `status`, with the headers given. */
async function answering(t: Test, status: number, headers: Record<string, string> = {}): Promise<{ url: string; requests: () => number }> {
  let requests = 0
  const server: Server = createServer((_request, response) => {
    requests++
    response.writeHead(status, { 'content-type': 'application/json', ...headers }).end('{}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests }
}

const steps = [{ next: () => ({ method: 'GET' as const, path: '/' }) }]

t.test("the ramp's patient clients wait the Retry-After a 503 gives before they ask again", async (t) => {
  const refusing = await answering(t, 503, { 'retry-after': '2' })
  const result = await runPatientLoad({ url: refusing.url, connections: 4, durationS: 2.5, steps })
  // Each client asks, waits 2 s, asks: at most two requests in 2.5 s, however fast the machine
  // (a client that waited the default second instead would send three).
  t.ok(result.responses >= 4 && result.responses <= 8, `4 clients told to retry after 2 s sent ${result.responses} requests in 2.5 s (4 to 8)`)
  t.ok(refusing.requests() >= result.responses, 'every answer counted came from the server')
  t.same(result.statuses, { 503: result.responses }, 'all of them 503')
  t.equal(result.goodput, 0, 'and no goodput')
  t.equal(result.durationS, 2.5, 'rates are per second of the stage')
  t.equal(result.errors, 0, 'no request went unanswered')

  const bare = await answering(t, 503)
  const defaulted = await runPatientLoad({ url: bare.url, connections: 4, durationS: 1.5, steps })
  t.ok(defaulted.responses >= 4 && defaulted.responses <= 8, `without Retry-After a refused client waits 1 s: ${defaulted.responses} requests from 4 clients in 1.5 s (4 to 8)`)

  const serving = await answering(t, 200)
  const served = await runPatientLoad({ url: serving.url, connections: 4, durationS: 1, steps })
  t.ok(served.responses > 12, `a client that is answered 200 asks again at once: ${served.responses} requests in 1 s`)
  t.equal(served.ok, served.responses, 'all 2xx')
  t.ok(served.goodput > 0, 'counted as goodput')

  const bodies = new Set<string>()
  await runPatientLoad({ url: serving.url, connections: 1, durationS: 0.3, steps: [{ ...steps[0]!, onResponse: (_status, body) => bodies.add(body) }] })
  t.same([...bodies], ['{}'], 'a step that reads the answer gets its body as sent')
})

t.test('a stage ends at its duration: an answer still on its way then is dropped, not waited for', async (t) => {
  let requests = 0
  const server: Server = createServer((_request, response) => {
    requests++
    // The first answer comes at once; every later one after 5 s, well past the stage.
    if (requests === 1) response.writeHead(200).end('{}')
    else setTimeout(() => response.writeHead(200).end('{}'), 5000).unref()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const started = performance.now()
  const result = await runPatientLoad({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: 1, durationS: 1, steps })
  const tookMs = performance.now() - started
  t.ok(tookMs < 4000, `the stage of 1 s returned after ${Math.round(tookMs)} ms, before the 5 s answer`)
  t.equal(result.responses, 1, 'only the answer within the stage is counted')
  t.equal(result.errors, 0, 'the request cut at the end is no error')
})
