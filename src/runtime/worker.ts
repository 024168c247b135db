import closeWithGrace from 'close-with-grace'
import type { Config } from '../config.js'
import { buildApp } from '../app.js'

export type WorkerMessage = { cmd: 'listening'; address: string }
export type PrimaryMessage = { cmd: 'shutdown' }

/**
 * One cluster worker: the whole app on the shared port. SIGTERM (or the primary's shutdown
 * message) stops accepting, lets in-flight requests finish, closes the pools and exits 0.
 */
export async function runWorker(config: Config): Promise<void> {
  const app = await buildApp(config)
  let closing = false
  const { close } = closeWithGrace(
    {
      delay: config.SHUTDOWN_TIMEOUT_MS,
      // SIGINT from a terminal reaches every process of the group; the primary turns it into an
      // orderly shutdown message, so a worker must not also die of it.
      skip: ['SIGINT'],
      logger: { error: (message: unknown) => app.log.error(message) },
    },
    async ({ signal, err }) => {
      closing = true
      if (err) app.log.error({ err }, 'worker failing, closing')
      app.log.info({ signal }, 'worker draining')
      await app.close()
    },
  )
  process.on('SIGINT', () => {})
  process.on('message', (message: PrimaryMessage) => {
    if (message?.cmd !== 'shutdown' || closing) return
    closing = true
    void close()
  })
  const address = await app.listen({ port: config.PORT, host: config.HOST })
  process.send?.({ cmd: 'listening', address } satisfies WorkerMessage)
}
