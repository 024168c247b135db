import { createRequire } from 'node:module'
import autocannon from 'autocannon'

interface PendingResponse {
  req: { onResponse?: unknown }
  body: string
}

// autocannon decodes every response body into a string and appends it chunk by chunk, whether or
// not anything reads it. For a seat map of thousands of seats that work grows with the number of
// connections (more, smaller chunks per body) and, on the same cores as the server, takes CPU the
// server would have used. Bodies are kept only for requests whose step reads them.
const pendingQueue = createRequire(import.meta.url)('autocannon/lib/pipelinedRequestsQueue.js') as {
  prototype: { peek(): PendingResponse | undefined; addBody(data: Buffer): void }
}
pendingQueue.prototype.addBody = function addBody(data: Buffer) {
  const pending = this.peek()
  if (pending && typeof pending.req.onResponse === 'function') pending.body += data
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PATCH'
  path: string
  headers?: Record<string, string>
  /** A JSON body; sent with content-type application/json. */
  json?: unknown
}

/** Per-connection scratch space, kept from a request to its response. */
export type Context = Record<string, unknown>

/** One request of the sequence every connection loops over, with fresh random ids each time. */
export interface RequestStep {
  next: (context: Context) => HttpRequest
  onResponse?: (status: number, body: string, context: Context, headers: Record<string, string>) => void
}

export interface LoadOptions {
  url: string
  connections: number
  durationS: number
  steps: RequestStep[]
  /** Send exactly this many requests instead of running for `durationS` (still cut off at 60 s). */
  requestCount?: number
  /** A 2xx answered within this many ms counts towards goodput. */
  sloMs?: number
  /** A request unanswered this long counts as a timeout (and its connection is reopened). */
  timeoutS?: number
}

export interface LoadResult {
  connections: number
  durationS: number
  /** Responses received, whatever their status. */
  responses: number
  rps: number
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number }
  /** Responses by status code. */
  statuses: Record<string, number>
  ok: number
  non2xx: number
  /** Connection errors and timeouts: requests that got no response at all. */
  errors: number
  timeouts: number
  sloMs: number
  /** 2xx responses answered within the SLO, per second. */
  goodput: number
}

/** The 2xx answers among answers counted by status. */
export const countOk = (statuses: Record<string, number>) =>
  Object.entries(statuses).reduce((sum, [status, count]) => (status.startsWith('2') ? sum + count : sum), 0)

function toRaw(request: HttpRequest): autocannon.Request {
  const headers: Record<string, string> = { ...request.headers }
  if (request.json === undefined) return { method: request.method, path: request.path, headers }
  headers['content-type'] = 'application/json'
  return { method: request.method, path: request.path, headers, body: JSON.stringify(request.json) }
}

/**
 * One autocannon run. Every response's status and time is counted here too, because goodput
 * (2xx within the SLO) cannot be read from autocannon's latency histogram, which mixes statuses.
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const sloMs = options.sloMs ?? 1000
  const timeoutS = options.timeoutS ?? 10
  const statuses: Record<string, number> = {}
  let withinSlo = 0
  return new Promise((resolve, reject) => {
    // autocannon ends a timed run itself; this bounds a counted run, and any run a wedged server stalls.
    const limitS = options.requestCount ? 60 : options.durationS + timeoutS + 5
    const watchdog = setTimeout(() => instance.stop(), limitS * 1000)
    const instance = autocannon(
      {
        url: options.url,
        // autocannon refuses more connections than requests, as when few holds were won to pay for.
        connections: options.requestCount ? Math.min(options.connections, options.requestCount) : options.connections,
        duration: options.durationS,
        amount: options.requestCount,
        timeout: timeoutS,
        requests: options.steps.map((step) => ({
          setupRequest: (request: autocannon.Request, context: object) => ({ ...request, ...toRaw(step.next(context as Context)) }),
          onResponse:
            step.onResponse &&
            ((status: number, body: string, context: object, headers: autocannon.Request['headers']) =>
              step.onResponse!(status, body, context as Context, (headers ?? {}) as Record<string, string>)),
        })),
      },
      (error, result) => {
        clearTimeout(watchdog)
        if (error) return reject(error)
        const responses = Object.values(statuses).reduce((sum, count) => sum + count, 0)
        const ok = countOk(statuses)
        resolve({
          connections: options.connections,
          durationS: result.duration,
          responses,
          rps: responses / result.duration,
          latencyMs: {
            p50: result.latency.p50,
            p90: result.latency.p90,
            p99: result.latency.p99,
            max: result.latency.max,
            mean: result.latency.average,
          },
          statuses,
          ok,
          non2xx: responses - ok,
          errors: result.errors,
          timeouts: result.timeouts,
          sloMs,
          goodput: withinSlo / result.duration,
        })
      },
    )
    instance.on('response', (_client, status, _bytes, responseTime) => {
      statuses[status] = (statuses[status] ?? 0) + 1
      if (status >= 200 && status < 300 && responseTime <= sloMs) withinSlo++
    })
  })
}
