import { Agent, request as httpRequest } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import type { Context, LoadOptions, LoadResult } from './autocannon.js'

/** Longest a client waits after a 503, whatever Retry-After says: a stage must end on time. */
const MAX_RETRY_AFTER_S = 5

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0

/**
 * A closed loop of `connections` clients, as autocannon runs, except that a client answered 503
 * waits the Retry-After the server gave (1 s if it gave none) before its next request, as a
 * waiting room's own pages and the rush's clients do. autocannon resends the moment it is
 * refused, which no browser told to come back later does. Same result shape as `runLoad`; the
 * latency percentiles are over every answer, as autocannon's are.
 */
export async function runPatientLoad(options: LoadOptions): Promise<LoadResult> {
  const sloMs = options.sloMs ?? 1000
  const timeoutS = options.timeoutS ?? 10
  const { hostname, port } = new URL(options.url)
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections })
  const statuses: Record<string, number> = {}
  const latencies: number[] = []
  let withinSlo = 0
  let errors = 0
  let timeouts = 0
  const started = performance.now()
  const deadline = started + options.durationS * 1000

  const send = (step: LoadOptions['steps'][number], context: Context) =>
    new Promise<{ status: number; retryAfterS: number } | undefined>((resolve) => {
      const next = step.next(context)
      const body = next.json === undefined ? undefined : JSON.stringify(next.json)
      const headers: Record<string, string | number> = { ...next.headers }
      if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      const sentAt = performance.now()
      const sent = httpRequest({ agent, hostname, port, method: next.method, path: next.path, headers, timeout: timeoutS * 1000 }, (response) => {
        const chunks: Buffer[] = []
        // Bodies are kept only for steps that read them, as in runLoad.
        if (step.onResponse) response.on('data', (chunk: Buffer) => chunks.push(chunk))
        else response.resume()
        response.on('end', () => {
          const status = response.statusCode ?? 0
          const tookMs = performance.now() - sentAt
          latencies.push(tookMs)
          statuses[status] = (statuses[status] ?? 0) + 1
          if (status >= 200 && status < 300 && tookMs <= sloMs) withinSlo++
          step.onResponse?.(status, Buffer.concat(chunks).toString(), context, response.headers as Record<string, string>)
          const retryAfter = Number(response.headers['retry-after'])
          resolve({ status, retryAfterS: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : 1 })
        })
        response.on('error', () => resolve(undefined))
      })
      sent.on('timeout', () => {
        timeouts++
        sent.destroy()
      })
      sent.on('error', () => {
        errors++
        resolve(undefined)
      })
      sent.end(body)
    })

  const client = async () => {
    const context: Context = {}
    for (let i = 0; performance.now() < deadline; i++) {
      const answer = await send(options.steps[i % options.steps.length]!, context)
      if (answer?.status !== 503) continue
      const waitMs = Math.min(answer.retryAfterS, MAX_RETRY_AFTER_S) * 1000
      // A wait that outlasts the stage ends this client's part in it.
      if (performance.now() + waitMs >= deadline) break
      await delay(waitMs)
    }
  }
  await Promise.all(Array.from({ length: options.connections }, client))
  agent.destroy()

  const durationS = (performance.now() - started) / 1000
  const responses = latencies.length
  const ok = Object.entries(statuses).reduce((sum, [status, count]) => (status.startsWith('2') ? sum + count : sum), 0)
  latencies.sort((a, b) => a - b)
  const round = (ms: number) => Math.round(ms)
  return {
    connections: options.connections,
    durationS,
    responses,
    rps: responses / durationS,
    latencyMs: {
      p50: round(percentile(latencies, 0.5)),
      p90: round(percentile(latencies, 0.9)),
      p99: round(percentile(latencies, 0.99)),
      max: round(latencies.at(-1) ?? 0),
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
