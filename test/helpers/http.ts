import { request, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { identityToken } from './jwt.js'

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  /** Parsed when it is JSON, the text otherwise. */
  body: any
}

export interface SendOptions {
  /** Sent as JSON, with content-type application/json unless `headers` name another. */
  body?: unknown
  /** Sent as it is: malformed JSON, another media type, an empty body. */
  raw?: string
  headers?: Record<string, string>
  /** Gives up when the connection stays silent this long (default 10 s). */
  timeoutMs?: number
  /** false keeps a JSON body as its text, to compare bytes. */
  parse?: boolean
  /** Keeps the body as the bytes received (a Buffer), not decoded: a gzipped answer. */
  binary?: boolean
  /**
   * The user whose identity token (signed with the tests' IDENTITY_JWT_SECRET) goes in
   * Authorization. By default the user a user call names: the path of GET /point/:userId, the
   * body's userId on PATCH /point and POST /concert/wait. false sends none; so does an
   * Authorization header of the caller's own.
   */
  identity?: number | false
  /** The local address to connect from (any of 127.0.0.0/8 on loopback): another client machine. */
  localAddress?: string
}

/** The user a call acts for, when it is one of the calls that need that user's identity token. */
export function namedUser(method: string, path: string, body: unknown): number | undefined {
  const pointRead = method === 'GET' && /^\/point\/([0-9]+)$/.exec(path)
  if (pointRead) return Number(pointRead[1])
  const actsForBodyUser = (method === 'PATCH' && path === '/point') || (method === 'POST' && path === '/concert/wait')
  const userId = (body as { userId?: unknown } | undefined)?.userId
  return actsForBodyUser && typeof userId === 'number' && userId > 0 ? userId : undefined
}

/**
 * One request on a connection of its own (no keep-alive), so that concurrent calls spread over
 * the cluster's workers and a killed worker takes only its own requests with it.
 */
export function send(baseUrl: string, method: string, path: string, options: SendOptions = {}): Promise<Reply> {
  const headers: Record<string, string | number> = { ...options.headers }
  const actingAs = options.identity ?? namedUser(method, path, options.body)
  if (actingAs !== false && actingAs !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) {
    headers.authorization = `Bearer ${identityToken(actingAs)}`
  }
  let payload = options.raw
  if (options.body !== undefined) {
    payload = JSON.stringify(options.body)
    headers['content-type'] ??= 'application/json'
  }
  if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload)
  return new Promise((done, fail) => {
    const req = request(`${baseUrl}${path}`, { method, agent: false, timeout: options.timeoutMs ?? 10_000, headers, localAddress: options.localAddress }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', fail)
      res.on('end', () => {
        const bytes = Buffer.concat(chunks)
        if (options.binary) return done({ status: res.statusCode ?? 0, headers: res.headers, body: bytes })
        const text = bytes.toString('utf8')
        let body: unknown = text
        if (options.parse !== false) {
          try {
            body = JSON.parse(text)
          } catch {}
        }
        done({ status: res.statusCode ?? 0, headers: res.headers, body })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)))
    req.on('error', fail)
    req.end(payload)
  })
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** A connection to write raw HTTP on, for what a well-behaved client cannot send. */
export interface RawConnection {
  write: (text: string) => void
  /** Everything received so far. */
  received: () => string
  /** Resolves with everything received once the server has closed the connection. */
  closed: Promise<string>
}

export function rawConnection(baseUrl: string): RawConnection {
  const { hostname, port } = new URL(baseUrl)
  const socket = connect(Number(port), hostname)
  let text = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => (text += chunk))
  const closed = new Promise<string>((done) => socket.on('close', () => done(text)))
  socket.on('error', () => {})
  return { write: (chunk) => void socket.write(chunk), received: () => text, closed }
}

/** The responses in raw HTTP text: each status and JSON body, in order. */
export function rawResponses(text: string): { status: number; body: any }[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n(\{[^]*?\})(?=HTTP\/1\.1 |$)/g)].map((match) => ({
    status: Number(match[1]),
    body: JSON.parse(match[2]!),
  }))
}
