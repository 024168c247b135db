import closeWithGrace from 'close-with-grace'
import { AggregatorRegistry } from 'prom-client'
import type { Config } from '../config.js'
import { buildApp } from '../app.js'

export type WorkerMessage = { cmd: 'listening'; address: string; routes: readonly string[] } | { cmd: 'metrics'; id: number }
export type PrimaryMessage =
  | { cmd: 'shutdown' }
  | { cmd: 'metrics'; id: number; text: string }
  | { cmd: 'metrics'; id: number; error: string }

const pendingMetrics = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>()
let nextMetricsId = 0

/** Every worker's metrics merged, as Prometheus text: a worker asks the primary, which gathers them. */
function clusterMetrics(): Promise<string> {
  return new Promise((resolve, reject) => {
    const id = nextMetricsId++
    pendingMetrics.set(id, { resolve, reject })
    process.send!({ cmd: 'metrics', id } satisfies WorkerMessage)
  })
}

function settleMetrics(message: PrimaryMessage): void {
  if (message?.cmd !== 'metrics') return
  const pending = pendingMetrics.get(message.id)
  pendingMetrics.delete(message.id)
  if ('text' in message) pending?.resolve(message.text)
  else pending?.reject(new Error(message.error))
}

/**
 * One cluster worker: the whole app on the shared port. SIGTERM (or the primary's shutdown
 * message) stops accepting, lets in-flight requests finish, closes the pools and exits 0.
 * `stopRequestedEarly`: one came while the modules were loading.
 */
export async function runWorker(config: Config, stopRequestedEarly = false): Promise<void> {
  // Constructing an AggregatorRegistry makes this process answer the primary's requests for its
  // metrics (prom-client's cluster IPC); until the app's registry is set below, with none.
  new AggregatorRegistry()
  process.on('message', settleMetrics)
  // SIGINT from a terminal reaches every process of the group; the primary turns it into an
  // orderly shutdown message, so a worker must not also die of it.
  process.on('SIGINT', () => {})
  // A stop asked for while the app is still being built is remembered, not lost: the worker then
  // closes what it built and exits without ever listening.
  let stopRequested = stopRequestedEarly
  let close: (() => void) | undefined
  const requestStop = () => {
    if (stopRequested) return
    stopRequested = true
    close?.()
  }
  process.on('message', (message: PrimaryMessage) => {
    if (message?.cmd === 'shutdown') requestStop()
  })
  process.on('SIGTERM', requestStop)

  const app = await buildApp(config, { clusterMetrics })
  if (stopRequested) {
    app.log.info('stop requested while starting; closing without listening')
    await app.close()
    process.exit(0)
  }
  AggregatorRegistry.setRegistries(app.metrics.registry)
  ;({ close } = closeWithGrace(
    {
      delay: config.SHUTDOWN_TIMEOUT_MS,
      skip: ['SIGINT'],
      logger: { error: (message: unknown) => app.log.error(message) },
    },
    async ({ signal, err }) => {
      stopRequested = true
      if (err) app.log.error({ err }, 'worker failing, closing')
      app.log.info({ signal }, 'worker draining')
      await app.close()
    },
  ))
  // Only now: with no handler at all for an instant, SIGTERM would kill the worker outright.
  process.off('SIGTERM', requestStop)
  const address = await app.listen({ port: config.PORT, host: config.HOST, backlog: config.LISTEN_BACKLOG })
  process.send?.({ cmd: 'listening', address, routes: app.served } satisfies WorkerMessage)
}
