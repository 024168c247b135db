import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Ajv, type AnySchema } from 'ajv'
import { randomUUID } from 'node:crypto'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './config.js'
import errors, { answerFrameworkError } from './plugins/errors.js'
import docs from './plugins/docs.js'
import db from './plugins/db.js'
import redis from './plugins/redis.js'
import pressure from './plugins/pressure.js'
import idempotency from './plugins/idempotency.js'
import serializer from './concerts/serializer.js'
import auth from './plugins/auth.js'
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
// parts and headers arrive as strings, so there (and only there) types are coerced.
function buildValidator(externalSchemas: Record<string, unknown>) {
  const make = (coerceTypes: boolean) => {
    const ajv = new Ajv({ coerceTypes, removeAdditional: false, useDefaults: true, strict: false })
    for (const schema of Object.values(externalSchemas)) ajv.addSchema(schema as object)
    return ajv
  }
  const bodyAjv = make(false)
  const urlAjv = make(true)
  return ({ schema, httpPart }: { schema: AnySchema; httpPart?: string }) =>
    (httpPart === 'body' ? bodyAjv : urlAjv).compile(schema)
}

/** Builds the whole server, ready but not listening: tests, the cluster worker and the lab share it. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
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
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 100 },
    frameworkErrors: answerFrameworkError,
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
  await app.register(pressure)
  await app.register(idempotency)
  await app.register(serializer)
  await app.register(queue)
  await app.register(detailConcerts)
  await app.register(auth)
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
