import fp from 'fastify-plugin'
import { Type } from '@sinclair/typebox'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { AppError } from './errors.js'
import { poolUsage } from '../db/connection.js'
import { errorResponses } from '../shared/schemas.js'

export interface AppMetrics {
  /** This process's metrics; in the cluster, the primary merges every worker's. */
  registry: Registry
  holds: Counter
  payments: Counter
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: AppMetrics
  }
}

export interface MetricsOptions {
  /** Every worker's metrics merged, as Prometheus text; without it GET /metrics serves this process's own. */
  clusterMetrics?: () => Promise<string>
}

/**
 * Prometheus metrics: request durations by route pattern, shed requests, the queue, admissions,
 * holds and payments, and the default Node.js process metrics. Registered after the queue (which
 * it gauges) and before the routes (which it times).
 */
export default fp<MetricsOptions>(
  async function metrics(app, { clusterMetrics }) {
    const registry = new Registry()
    const registers = [registry]
    collectDefaultMetrics({ register: registry })

    const requestDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time to answer a request, by method, route pattern and status code',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    })
    new Counter({
      name: 'seatrush_pressure_rejections_total',
      help: 'Requests shed with 503 because the worker was under pressure or waits for MySQL stood too long',
      registers,
      collect() {
        this.reset()
        this.inc(app.shedding.rejected)
      },
    })
    new Counter({
      name: 'seatrush_pressure_rejections_after_wait_total',
      help: 'Of the requests shed with 503, those refused after waiting for a MySQL connection (their routing and Redis work spent)',
      registers,
      collect() {
        this.reset()
        this.inc(app.shedding.rejectedAfterWait)
      },
    })
    const admissions = new Counter({
      name: 'seatrush_queue_admissions_total',
      help: 'Users admitted from the waiting queue',
      registers,
    })
    new Gauge({
      name: 'seatrush_queue_users',
      help: 'Users in the waiting queue by state (WAITING or ACTIVE), read from Redis at scrape time',
      labelNames: ['state'] as const,
      // Every worker reads the one queue: merged, that is one reading, not the sum of them.
      aggregator: 'max',
      registers,
      async collect() {
        try {
          const { waiting, active } = await app.queue.sizes()
          this.set({ state: 'waiting' }, waiting)
          this.set({ state: 'active' }, active)
        } catch (error) {
          // Redis is down: no reading rather than a stale one.
          this.reset()
          app.log.debug({ err: error }, 'queue sizes unavailable for metrics')
        }
      },
    })
    new Gauge({
      name: 'seatrush_db_pool_connections',
      help: 'MySQL pool connections of this worker by state: open, idle, and requests waiting for one',
      labelNames: ['state'] as const,
      registers,
      collect() {
        // With shedding the requests wait in the SheddingPool's line, not in mysql2's.
        const usage = poolUsage(app.dbPool)
        usage.waiting += app.dbQueue.waiting
        for (const [state, count] of Object.entries(usage)) this.set({ state }, count)
      },
    })
    if (app.config.MYSQL_REPLICA_URL) {
      new Gauge({
        name: 'seatrush_replica_lag_seconds',
        help: 'How far the read replica was behind the primary at its last check (absent while it does not answer)',
        aggregator: 'max',
        registers,
        collect() {
          const { lagMs } = app.replicaStatus()
          if (lagMs === undefined) this.reset()
          else this.set(lagMs / 1000)
        },
      })
      new Gauge({
        name: 'seatrush_replica_in_use',
        help: '1 while stale-tolerant reads go to the replica, 0 while they fall back to the primary (lagging or down)',
        aggregator: 'min',
        registers,
        collect() {
          this.set(app.replicaStatus().target === 'replica' ? 1 : 0)
        },
      })
    }
    app.decorate('metrics', {
      registry,
      holds: new Counter({ name: 'seatrush_holds_total', help: 'Seats held', registers }),
      payments: new Counter({ name: 'seatrush_payments_total', help: 'Reservations paid (a replayed payment counts once)', registers }),
    })

    app.onAdmissionTick(async ({ admitted }) => {
      admissions.inc(admitted)
    })
    app.addHook('onResponse', async (request, reply) => {
      const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }
      requestDuration.observe(labels, reply.elapsedTime / 1000)
    })

    const schema = {
      tags: ['health'],
      summary: 'Prometheus metrics, all workers aggregated',
      response: { 200: Type.String({ description: 'Prometheus text format' }), ...errorResponses(503) },
    }
    app.get('/metrics', { schema, logLevel: 'warn' }, async (request, reply) => {
      let text: string
      try {
        text = clusterMetrics ? await clusterMetrics() : await registry.metrics()
      } catch (error) {
        request.log.warn({ err: error }, 'metrics could not be gathered')
        throw new AppError(503, 'METRICS_UNAVAILABLE', 'Metrics could not be gathered, retry shortly')
      }
      return reply.type(registry.contentType).send(text)
    })
  },
  { name: 'metrics', dependencies: ['errors', 'db', 'queue'] },
)
