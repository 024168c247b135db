import fp from 'fastify-plugin'
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { PoolOverloadedError } from '../db/connection.js'

/** The one shape every failure is answered with. */
export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer(),
    error: Type.String(),
    message: Type.String(),
    code: Type.String({ description: 'Stable, machine-readable reason' }),
    position: Type.Optional(Type.Integer({ description: 'Queue position, on 403 NOT_ACTIVE' })),
    etaSeconds: Type.Optional(Type.Integer()),
  },
  { $id: 'ErrorResponse', title: 'ErrorResponse' },
)

/** A failure the client can act on: its status, code and message are sent as they are. */
export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message)
    this.name = 'AppError'
  }
}

// Fastify's own client errors, renamed to codes that do not leak the framework.
const frameworkCodes: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_BAD_URL: 'BAD_URL',
  FST_ERR_MAX_PARAM_LENGTH: 'URL_TOO_LONG',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_HEADER: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
  FST_ERR_RATE_LIMITED: 'RATE_LIMITED',
}

// Errors of a dependency that is down or unreachable: the client should retry, not report a bug.
const unavailableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'ER_QUERY_INTERRUPTED',
  'ER_CONNECTION_KILLED',
])

function isDependencyUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && unavailableCodes.has(code)) return true
  if ((error as { fatal?: unknown }).fatal === true) return true
  const name = error.name
  if (name === 'MaxRetriesPerRequestError') return true
  return /Connection is closed|Stream isn't writeable|Pool is closed|Can't add new command when connection is in closed state|connect ETIMEDOUT|Command timed out|^CLUSTERDOWN|^TRYAGAIN|Too many Cluster redirections|Cluster isn't ready|Failed to refresh slots cache/.test(
    error.message,
  )
}

/** The answer to a shed request, the same wherever it was shed. */
export const overloaded = body(503, 'SERVICE_OVERLOADED', 'Service is under pressure, retry shortly')

function body(statusCode: number, code: string, message: string, details: Record<string, unknown> = {}) {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, code, ...details }
}

/**
 * Fastify answers URL errors (bad percent-encoding, an over-long parameter) before any route or
 * error handler runs; its `frameworkErrors` option sends them here, in the one error shape.
 */
export function answerFrameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = error.statusCode ?? 400
  reply.code(status).send(body(status, frameworkCodes[error.code] ?? 'BAD_REQUEST', error.message))
}

// What Node's HTTP parser refuses before Fastify sees a request: status and stable code.
const parserErrors: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'HEADERS_TOO_LARGE'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'REQUEST_TIMEOUT'],
}

/**
 * Fastify's `clientErrorHandler`: a request Node's parser refused (oversized headers, a header
 * value with forbidden bytes, a malformed request line) is answered in the one error shape, on
 * the raw socket since no request object exists, and the connection is closed.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: import('node:net').Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code] = parserErrors[error.code ?? ''] ?? [400, 'MALFORMED_REQUEST']
  const message = status === 431 ? 'The request headers are too large' : status === 408 ? 'The request took too long to arrive' : 'The request could not be parsed'
  const payload = JSON.stringify(body(status, code, message))
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`,
    )
  }
  socket.destroy()
}

export default fp(
  async function errors(app) {
    app.addSchema(ErrorResponse)

    // Once the server drains, a request on a kept-alive connection is refused with a code and
    // told to reconnect (to another worker or host) instead of being served by a closing app.
    let draining = false
    app.addHook('preClose', async () => {
      draining = true
    })
    app.addHook('onRequest', async (_request, reply) => {
      if (!draining) return
      reply.header('connection', 'close').header('retry-after', '1')
      return reply.code(503).send(body(503, 'SHUTTING_DOWN', 'The server is shutting down, retry shortly'))
    })

    app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
      reply.code(404).send(body(404, 'ROUTE_NOT_FOUND', `Route ${request.method} ${request.url} not found`))
    })

    app.setErrorHandler((error: FastifyError | AppError, request: FastifyRequest, reply: FastifyReply) => {
      if (error instanceof AppError) {
        if (error.statusCode >= 500) request.log.warn({ code: error.code }, error.message)
        return reply.code(error.statusCode).send(body(error.statusCode, error.code, error.message, error.details))
      }
      const fastifyError = error as FastifyError
      if (fastifyError.validation) {
        return reply.code(400).send(body(400, 'VALIDATION_FAILED', fastifyError.message))
      }
      const status = fastifyError.statusCode ?? 500
      if (status >= 400 && status < 500) {
        const code = frameworkCodes[fastifyError.code] ?? (status === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST')
        return reply.code(status).send(body(status, code, fastifyError.message))
      }
      if (error instanceof PoolOverloadedError) {
        reply.header('retry-after', String(request.server.config?.RETRY_AFTER_S ?? 1))
        return reply.code(503).send(overloaded)
      }
      if (isDependencyUnavailable(error)) {
        request.log.warn({ err: error }, 'dependency unavailable')
        reply.header('retry-after', '1')
        return reply.code(503).send(body(503, 'DEPENDENCY_UNAVAILABLE', 'A backing service is unavailable, retry shortly'))
      }
      request.log.error({ err: error }, 'unhandled error')
      return reply.code(500).send(body(500, 'INTERNAL_ERROR', 'Internal server error'))
    })
  },
  { name: 'errors' },
)
