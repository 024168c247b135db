import { Agent, request, type IncomingHttpHeaders } from 'node:http'

/** One answer, or status 0 when none came (connection refused, reset, timed out). */
export interface Answer {
  status: number
  /** The parsed JSON (or the text when it is not JSON, or was asked for), or undefined when the caller asked not to read it. */
  body: any
  /** The answer's headers; empty when none came. */
  headers: IncomingHttpHeaders
  /** From the moment the request had a connection to the end of the answer. */
  ms: number
  /** When the request had a connection (performance.now()). */
  at: number
  /** The request opened its connection (it was not sent on one kept alive from an earlier request). */
  fresh: boolean
}

export interface SendOptions {
  body?: unknown
  headers?: Record<string, string>
  /**
   * How the answer's body is read: parsed as JSON (the default), kept as text, or drained unread
   * (`none`: no string built, no JSON parsed, for a 180 KB seat map nobody reads).
   */
  read?: 'json' | 'text' | 'none'
}

export interface KeepAliveClient {
  send: (method: string, path: string, options?: SendOptions) => Promise<Answer>
  close: () => void
}

/**
 * An event-driven HTTP client for many simulated users on few connections: at most `connections`
 * requests at once on keep-alive sockets; the rest wait their turn in this process, in order, as
 * users behind a shared proxy would. The waiting line is this client's own (Node's agent keeps
 * its waiting requests in an array that costs O(n) per request once tens of thousands wait).
 * Latency is timed from the moment a request has its socket, so time spent waiting for a free
 * connection here is not charged to the server.
 */
export function keepAliveClient(baseUrl: string, connections: number, timeoutMs = 15_000): KeepAliveClient {
  const agent = new Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, scheduling: 'fifo' })
  // A FIFO of requests waiting for one of the connections, read from `head` on.
  const waiting: Array<() => void> = []
  let head = 0
  let busy = 0
  const release = () => {
    busy--
    if (head < waiting.length) {
      busy++
      const next = waiting[head]!
      waiting[head++] = undefined as never
      if (head > 4096 && head * 2 > waiting.length) waiting.splice(0, head), (head = 0)
      next()
    }
  }
  const turn = () => {
    if (busy < connections) {
      busy++
      return Promise.resolve()
    }
    return new Promise<void>((start) => waiting.push(start))
  }
  const send: KeepAliveClient['send'] = (method, path, options = {}) =>
    turn().then(() => exchange(method, path, options)).finally(release)
  const exchange: KeepAliveClient['send'] = (method, path, options = {}) =>
    new Promise((done) => {
      const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
      const headers: Record<string, string | number> = { ...options.headers }
      if (payload !== undefined) {
        headers['content-type'] = 'application/json'
        headers['content-length'] = Buffer.byteLength(payload)
      }
      let at = performance.now()
      let fresh = false
      let settled = false
      const finish = (status: number, body: unknown, answered: IncomingHttpHeaders = {}) => {
        if (settled) return
        settled = true
        done({ status, body, headers: answered, ms: performance.now() - at, at, fresh })
      }
      const req = request(`${baseUrl}${path}`, { method, agent, headers, timeout: timeoutMs }, (res) => {
        res.on('error', () => finish(0, undefined))
        if (options.read === 'none') {
          res.on('end', () => finish(res.statusCode ?? 0, undefined, res.headers))
          res.resume()
          return
        }
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => {
          let body: unknown = text
          try {
            if (options.read !== 'text') body = JSON.parse(text)
          } catch {}
          finish(res.statusCode ?? 0, body, res.headers)
        })
      })
      req.on('socket', () => {
        at = performance.now()
        fresh = !req.reusedSocket
      })
      req.on('timeout', () => req.destroy(new Error('timed out')))
      req.on('error', () => finish(0, undefined))
      req.end(payload)
    })
  return { send, close: () => agent.destroy() }
}
