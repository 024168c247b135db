import { Agent, request } from 'node:http'

/** One answer, or status 0 when none came (connection refused, reset, timed out). */
export interface Answer {
  status: number
  body: any
  /** From the moment the request had a connection to the end of the answer. */
  ms: number
  /** When the request had a connection (performance.now()). */
  at: number
}

export interface KeepAliveClient {
  send: (method: string, path: string, options?: { body?: unknown; headers?: Record<string, string> }) => Promise<Answer>
  close: () => void
}

/**
 * An event-driven HTTP client for many simulated users on few connections: at most `connections`
 * keep-alive sockets, which requests wait for in order, as users behind a shared proxy would. Cheap
 * enough to drive tens of thousands of users from one core. Latency is timed from the moment a
 * request has its socket, so time spent waiting for a free connection in this process is not
 * charged to the server.
 */
export function keepAliveClient(baseUrl: string, connections: number, timeoutMs = 15_000): KeepAliveClient {
  const agent = new Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, scheduling: 'fifo' })
  const send: KeepAliveClient['send'] = (method, path, options = {}) =>
    new Promise((done) => {
      const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
      const headers: Record<string, string | number> = { ...options.headers }
      if (payload !== undefined) {
        headers['content-type'] = 'application/json'
        headers['content-length'] = Buffer.byteLength(payload)
      }
      let at = performance.now()
      let settled = false
      const finish = (status: number, body: unknown) => {
        if (settled) return
        settled = true
        done({ status, body, ms: performance.now() - at, at })
      }
      const req = request(`${baseUrl}${path}`, { method, agent, headers, timeout: timeoutMs }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('error', () => finish(0, undefined))
        res.on('end', () => {
          let body: unknown = text
          try {
            body = JSON.parse(text)
          } catch {}
          finish(res.statusCode ?? 0, body)
        })
      })
      req.on('socket', () => (at = performance.now()))
      req.on('timeout', () => req.destroy(new Error('timed out')))
      req.on('error', () => finish(0, undefined))
      req.end(payload)
    })
  return { send, close: () => agent.destroy() }
}
