import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Ajv, type AnySchema, type ValidateFunction } from 'ajv'
import { randomUUID } from 'node:crypto'
import { createServer, type ServerOptions } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './config.js'
import errors, { answerClientError, answerFrameworkError } from './plugins/errors.js'
import docs from './plugins/docs.js'
import db from './plugins/db.js'
import redis from './plugins/redis.js'
import pressure, { createDoor } from './plugins/pressure.js'
import idempotency from './plugins/idempotency.js'
import serializer from './concerts/serializer.js'
import seatMaps from './concerts/seat-maps.js'
import auth from './plugins/auth.js'
import identity from './plugins/identity.js'
import metrics from './plugins/metrics.js'
import rateLimit from './plugins/rate-limit.js'
import queue from './queue/plugin.js'
import detailConcerts from './concerts/detail-concerts.js'
import adminRoutes from './admin/routes.js'
import healthRoutes from './health/routes.js'
import pointRoutes from './points/routes.js'
import concertRoutes from './concerts/routes.js'
import queueRoutes from './queue/routes.js'
import reservationRoutes from './reservations/routes.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    /** Every route the API documents, as `METHOD /path`, in registration order. */
    served: readonly string[]
  }
}

export interface BuildOptions {
  /** Overrides the pino logger options (tests pass `false`). */
  logger?: FastifyServerOptions['logger']
  /** Every worker's metrics merged (the cluster worker asks the primary); without it, GET /metrics serves this process's. */
  clusterMetrics?: () => Promise<string>
}

// Bodies are validated strictly: "100" is not a number and an unknown field is an error. URL
// parts and headers arrive as strings, so there (and only there) types are coerced; an integer in
// the path must still be written as plain decimal digits, which Ajv's coercion ('0x10', '1e2',
// ' 5') does not ask for.
function buildValidator(externalSchemas: Record<string, unknown>) {
  const make = (coerceTypes: boolean) => {
    const ajv = new Ajv({ coerceTypes, removeAdditional: false, useDefaults: true, strict: false })
    for (const schema of Object.values(externalSchemas)) ajv.addSchema(schema as object)
    return ajv
  }
  const bodyAjv = make(false)
  const urlAjv = make(true)
  return ({ schema, httpPart }: { schema: AnySchema; httpPart?: string }) => {
    if (httpPart === 'body') return bodyAjv.compile(schema)
    const validate = urlAjv.compile(schema)
    return httpPart === 'params' ? decimalParams(schema, validate) : validate
  }
}

const DECIMAL = /^[0-9]+$/

/** Refuses a path integer that is not plain decimal digits, then validates as `validate` does. */
function decimalParams(schema: AnySchema, validate: ValidateFunction): ValidateFunction {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {}
  const integers = Object.keys(properties).filter((name) => properties[name]!.type === 'integer')
  if (integers.length === 0) return validate
  const strict = ((params: Record<string, unknown>) => {
    const loose = integers.find((name) => typeof params[name] === 'string' && !DECIMAL.test(params[name]))
    if (loose !== undefined) {
      strict.errors = [{ instancePath: `/${loose}`, schemaPath: '#/pattern', keyword: 'pattern', params: {}, message: 'must be a decimal integer' }]
      return false
    }
    const valid = validate(params)
    strict.errors = validate.errors
    return valid
  }) as ValidateFunction
  return strict
}

/** TRUST_PROXY as Fastify's trustProxy takes it: a flag, a hop count, or addresses. */
function trustProxy(setting: string): FastifyServerOptions['trustProxy'] {
  if (setting === 'true' || setting === 'false') return setting === 'true'
  // Fastify takes a hop count at run time (proxy-addr); its types only list the other forms.
  return /^[0-9]+$/.test(setting) ? (Number(setting) as unknown as string) : setting
}

/** Builds the whole server, ready but not listening: tests, the cluster worker and the lab share it. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  // Shed requests are answered here, before Fastify builds a request and a reply for them: under
  // a sustained overload they are most of what arrives (the pressure plugin closes the door).
  const door = createDoor()
  const app = Fastify({
    serverFactory: (handler, options) => {
      // Fastify passes its options with its defaults filled in; it sets these on a server it makes itself.
      const settings = options as { http?: ServerOptions; keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number }
      const server = createServer(settings.http ?? {}, (request, response) => {
        if (door.closed(request)) return door.refuse(response)
        handler(request, response)
      })
      server.keepAliveTimeout = settings.keepAliveTimeout
      server.requestTimeout = settings.requestTimeout
      server.setTimeout(settings.connectionTimeout)
      return server
    },
    logger: options.logger ?? { level: config.LOG_LEVEL },
    bodyLimit: config.BODY_LIMIT,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Per-request lines only at debug: at info they would cost more than many handlers do.
    logController: new LogController({ disableRequestLogging: config.LOG_LEVEL !== 'debug' && config.LOG_LEVEL !== 'trace' }),
    schemaController: { compilersFactory: { buildValidator } },
    // Starting the seat-map threads (each loads the code and opens MySQL connections) can take
    // longer than Fastify's 10 s default on a busy machine.
    pluginTimeout: 60_000,
    // The errors plugin answers requests during the drain itself, in the one error shape.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 100 },
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
    trustProxy: trustProxy(config.TRUST_PROXY),
  }).withTypeProvider<TypeBoxTypeProvider>()

  // A JSON API: any other body type is 415, not a string that fails validation later.
  app.removeContentTypeParser(['text/plain'])
  await app.register(fp(async (instance) => { instance.decorate('config', config) }, { name: 'config' }))
  const served: string[] = []
  app.addHook('onRoute', (route) => {
    const hidden = (route.schema as { hide?: boolean } | undefined)?.hide
    if (hidden && route.url !== '/docs') return
    for (const method of [route.method].flat()) if (method !== 'HEAD') served.push(`${method.padEnd(7)}${route.url}`)
  })
  app.decorate('served', served)
  await app.register(errors)
  await app.register(docs)
  await app.register(db)
  await app.register(redis)
  await app.register(pressure, { door })
  await app.register(idempotency)
  await app.register(serializer)
  await app.register(seatMaps)
  await app.register(queue)
  await app.register(detailConcerts)
  await app.register(auth)
  await app.register(identity)
  // After the queue it gauges, before the routes it times and limits.
  await app.register(metrics, { clusterMetrics: options.clusterMetrics })
  await app.register(rateLimit)

  await app.register(healthRoutes)
  await app.register(pointRoutes)
  await app.register(concertRoutes)
  await app.register(queueRoutes)
  await app.register(reservationRoutes)
  await app.register(adminRoutes)

  await app.ready()
  return app
}
