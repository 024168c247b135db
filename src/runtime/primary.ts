import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import { AggregatorRegistry } from 'prom-client'
import { configToEnv, type Config } from '../config.js'
import { prepareDatabase } from '../db/prepare.js'
import { discoverServices, type Services } from './services.js'
import { DEVELOPMENT_SECRET_FILE, developmentIdentitySecret, needsDevelopmentSecret } from './identity-secret.js'
import type { PrimaryMessage, WorkerMessage } from './worker.js'

/**
 * The cluster primary supervises and nothing else: it finds MySQL and Redis, prepares the
 * database once, forks WORKERS workers, replaces any that die, and drains them all on
 * SIGTERM/SIGINT before stopping the private services it started. `stopRequested`: a signal
 * came while the modules were loading.
 */
export async function runPrimary(config: Config, stopRequested = false): Promise<void> {
  const log = pino({ level: config.LOG_LEVEL, base: { role: 'primary', pid: process.pid } })
  // A signal is honoured from the first instant: during start-up it cancels the start (a wait for
  // a private database is cut short, a migration runs to its end, a seed stops after its batch),
  // stops the private services already started and exits 0; once workers are forked it drains them.
  const startup = new AbortController()
  let shutdown: ((signal: string) => Promise<void>) | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    if (shutdown) return void shutdown(signal)
    if (!startup.signal.aborted) log.info({ signal }, 'stopping during start-up')
    startup.abort()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  if (stopRequested) onSignal('SIGTERM')

  let services: Services
  try {
    services = await discoverServices({
      mysqlUrl: config.MYSQL_URL,
      redisUrl: config.REDIS_URL,
      embedded: config.EMBEDDED_SERVICES,
      log: (message) => log.info(message),
      signal: startup.signal,
    })
  } catch (error) {
    if (!startup.signal.aborted) throw error
    return exitDuringStartup(log)
  }
  if (startup.signal.aborted) return exitDuringStartup(log, services)
  log.info({ mysql: services.origin.mysql, redis: services.origin.redis }, 'services found')

  const workerConfig: Config = {
    ...config,
    MYSQL_URL: services.mysqlUrl,
    REDIS_URL: services.redisUrl,
    TOKEN_SECRET: config.TOKEN_SECRET ?? randomBytes(32).toString('hex'),
  }
  if (!config.TOKEN_SECRET) {
    log.warn('TOKEN_SECRET is not set: generated one for this run; tokens will not survive a restart or work across hosts')
  }
  if (config.AUTH_MODE === 'user-id') {
    log.warn('AUTH_MODE=user-id: no identity is checked; user calls act for the user they name and booking calls trust a bare user id in Authorization. INSECURE: for the original k6 scripts only')
  }
  if (needsDevelopmentSecret(config)) {
    const { secret, created } = developmentIdentitySecret()
    workerConfig.IDENTITY_JWT_SECRET = secret
    log.warn(
      { file: DEVELOPMENT_SECRET_FILE, created },
      "no IDENTITY_JWT_SECRET, IDENTITY_PUBLIC_KEY or IDENTITY_JWKS_URL: identity tokens are checked with a development secret; mint one with `npm run token -- <userId>`. Set the login's key in production",
    )
  }

  let prepared: Awaited<ReturnType<typeof prepareDatabase>>
  try {
    prepared = await prepareDatabase(workerConfig, { migrate: true, seed: true, signal: startup.signal })
  } catch (error) {
    if (startup.signal.aborted) return exitDuringStartup(log, services)
    await services.stop()
    throw error
  }
  if (startup.signal.aborted) return exitDuringStartup(log, services)
  log.info({ migrations: prepared.applied, seedUsers: config.SEED_USERS, seatsPerDetail: config.SEATS_PER_DETAIL }, 'database ready')

  const env = configToEnv(workerConfig)
  let shuttingDown = false
  let announced = false
  const listening = new Set<number>()
  const recentDeaths: number[] = []
  // GET /metrics reaches one worker, which asks here: prom-client gathers every worker's
  // registry over IPC and merges them (sums, or the aggregator a metric names).
  const metrics = new AggregatorRegistry()

  // Node's round-robin has the primary accept each connection and hand it to a worker over IPC,
  // one at a time per worker, each waiting for the worker's acknowledgement; a worker whose loop
  // is slow acknowledges slowly. In the lab's join burst (bench:rush --burst-only, 1,000 new
  // connections) that cost the joins opening a connection a p99 of 4.2-4.5 s against 1.0-1.1 s
  // with each worker accepting for itself, while every Redis command was a write of its own; with
  // auto-pipelining the gap narrowed to 0.80-1.15 s against 0.72-0.99 s (2 workers). The kernel
  // spreads connections less evenly (up to 72/28 over 2 workers, against 58/42), which a busy
  // worker evens out by accepting less.
  cluster.schedulingPolicy = config.CLUSTER_SCHEDULING === 'os' ? cluster.SCHED_NONE : cluster.SCHED_RR

  const fork = (): Worker => {
    const worker = cluster.fork(env)
    worker.on('message', (message: WorkerMessage) => {
      if (message?.cmd === 'metrics') {
        const { id } = message
        // The asking worker may have died meanwhile.
        const answer = (reply: PrimaryMessage) => worker.isConnected() && worker.send(reply)
        void metrics.clusterMetrics().then(
          (text) => answer({ cmd: 'metrics', id, text }),
          (error: Error) => answer({ cmd: 'metrics', id, error: error.message }),
        )
        return
      }
      if (message?.cmd !== 'listening') return
      listening.add(worker.id)
      if (!announced && listening.size === config.WORKERS) {
        announced = true
        const url = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`
        log.info({ url, workers: config.WORKERS, pids: Object.values(cluster.workers ?? {}).map((w) => w?.process.pid) }, 'seatrush is serving')
        process.stdout.write(`\nseatrush: ${config.WORKERS} workers on ${url}\n${message.routes.map((route) => `  ${route}`).join('\n')}\nOpenAPI: ${url}/docs\n\n`)
      }
    })
    return worker
  }

  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id)
    if (shuttingDown) return
    // A worker that keeps dying right after start (a dependency down, say) is respawned with a
    // growing delay rather than in a hot loop.
    const now = Date.now()
    recentDeaths.push(now)
    while (recentDeaths.length && recentDeaths[0]! < now - 10_000) recentDeaths.shift()
    const delay = Math.min(5000, 100 * 2 ** Math.max(0, recentDeaths.length - 2))
    log.error({ worker: worker.process.pid, code, signal, respawnInMs: delay }, 'worker died; replacing it')
    setTimeout(() => {
      if (!shuttingDown) fork()
    }, delay)
  })

  shutdown = async (signal: string) => {
    if (shuttingDown) return
    shuttingDown = true
    log.info({ signal }, 'draining workers')
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((done) => {
            const force = setTimeout(() => worker.process.kill('SIGKILL'), config.SHUTDOWN_TIMEOUT_MS + 2000)
            worker.once('exit', () => {
              clearTimeout(force)
              done()
            })
            // A worker still starting may not listen for messages yet (its modules still
            // loading): a signal reaches it at any stage, and before it serves it has nothing to drain.
            if (listening.has(worker.id) && worker.isConnected()) worker.send({ cmd: 'shutdown' } satisfies PrimaryMessage)
            else worker.process.kill('SIGTERM')
          }),
      ),
    )
    await services.stop()
    log.info('all workers drained; bye')
    process.exit(0)
  }
  for (let i = 0; i < config.WORKERS; i++) fork()
}

/** Ends a start-up a signal cancelled: the private services it started are stopped first. */
async function exitDuringStartup(log: pino.Logger, services?: Services): Promise<void> {
  await services?.stop()
  log.info('start-up cancelled; bye')
  process.exit(0)
}
