import { setTimeout as delay } from 'node:timers/promises'
import { countOk, type Context, type LoadOptions, type LoadResult } from './autocannon.js'
import { keepAliveClient } from './keepalive.js'
import { percentile } from './latency.js'

/** Longest a client waits after a 503, whatever Retry-After says. */
const MAX_RETRY_AFTER_S = 5

/** Seconds a 503 asks the client to wait: its Retry-After in seconds, or 1 when it gives none. */
function retryAfterS(header: string | string[] | undefined): number {
  const seconds = Number(header)
  return typeof header === 'string' && header.trim() !== '' && Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, MAX_RETRY_AFTER_S) : 1
}

/**
 * A closed loop of `connections` clients, as autocannon runs, except that a client answered 503
 * waits the Retry-After the server gave (1 s if it gave none) before its next request, as a
 * waiting room's own pages and the rush's clients do. autocannon resends the moment it is
 * refused, which no browser told to come back later does. Same result shape as `runLoad`, and
 * measured the same way: the stage ends at `durationS`, answers still on their way then are
 * dropped uncounted, and latency runs from the moment a request has its connection.
 */
export async function runPatientLoad(options: LoadOptions): Promise<LoadResult> {
  if (options.requestCount !== undefined) throw new Error('runPatientLoad runs for a duration only')
  const sloMs = options.sloMs ?? 1000
  const timeoutS = options.timeoutS ?? 10
  const client = keepAliveClient(options.url, options.connections, timeoutS * 1000)
  const statuses: Record<string, number> = {}
  const latencies: number[] = []
  let withinSlo = 0
  let errors = 0
  let timeouts = 0
  const deadline = performance.now() + options.durationS * 1000
  // At the deadline the connections are closed: requests in flight end unanswered, and uncounted.
  const stop = setTimeout(() => client.close(), options.durationS * 1000)

  const user = async () => {
    const context: Context = {}
    for (let i = 0; performance.now() < deadline; i++) {
      const step = options.steps[i % options.steps.length]!
      const request = step.next(context)
      const answer = await client.send(request.method, request.path, { headers: request.headers, body: request.json, read: step.onResponse ? 'text' : 'none' })
      if (performance.now() >= deadline) break
      if (answer.status === 0) {
        errors++
        if (answer.ms >= timeoutS * 1000) timeouts++
        continue
      }
      latencies.push(answer.ms)
      statuses[answer.status] = (statuses[answer.status] ?? 0) + 1
      if (answer.status >= 200 && answer.status < 300 && answer.ms <= sloMs) withinSlo++
      step.onResponse?.(answer.status, answer.body as string, context, answer.headers as Record<string, string>)
      if (answer.status !== 503) continue
      const waitMs = retryAfterS(answer.headers['retry-after']) * 1000
      // A wait that outlasts the stage ends this client's part in it.
      if (performance.now() + waitMs >= deadline) break
      await delay(waitMs)
    }
  }
  try {
    await Promise.all(Array.from({ length: options.connections }, user))
  } finally {
    clearTimeout(stop)
    client.close()
  }

  const durationS = options.durationS
  const responses = latencies.length
  const ok = countOk(statuses)
  latencies.sort((a, b) => a - b)
  return {
    connections: options.connections,
    durationS,
    responses,
    rps: responses / durationS,
    latencyMs: {
      p50: Math.round(percentile(latencies, 0.5)),
      p90: Math.round(percentile(latencies, 0.9)),
      p99: Math.round(percentile(latencies, 0.99)),
      max: Math.round(latencies.at(-1) ?? 0),
      mean: responses ? latencies.reduce((sum, ms) => sum + ms, 0) / responses : 0,
    },
    statuses,
    ok,
    non2xx: responses - ok,
    errors,
    timeouts,
    sloMs,
    goodput: withinSlo / durationS,
  }
}
