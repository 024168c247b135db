import cluster from 'node:cluster'

// Names the processes in ps/top; also a sign, from outside, that this code has begun to run.
process.title = cluster.isPrimary ? 'seatrush-primary' : 'seatrush-worker'

// Loading the server's modules takes a while, seconds on a busy machine. A stop asked for
// meanwhile is noted here and honoured once they are loaded, rather than killing the process
// outright (SIGTERM's default) or being lost (the primary's shutdown message with no listener).
let stopRequested = false
const noteStop = () => {
  stopRequested = true
}
const noteShutdown = (message: { cmd?: string } | undefined) => {
  if (message?.cmd === 'shutdown') noteStop()
}
// A worker ignores SIGINT: the primary turns a terminal's Ctrl-C into an orderly shutdown.
const noteInterrupt = cluster.isPrimary ? noteStop : () => {}
process.on('SIGTERM', noteStop)
process.on('SIGINT', noteInterrupt)
process.on('message', noteShutdown)

const [{ config: loadDotenv }, { ConfigError, loadConfig }, { ServiceDiscoveryError }, { runPrimary }, { runWorker }] = await Promise.all([
  import('dotenv'),
  import('./config.js'),
  import('./runtime/services.js'),
  import('./runtime/primary.js'),
  import('./runtime/worker.js'),
])
loadDotenv({ quiet: true })

function fail(error: unknown): never {
  const known = error instanceof ConfigError || error instanceof ServiceDiscoveryError
  process.stderr.write(`seatrush: ${known ? (error as Error).message : (error as Error)?.stack ?? String(error)}\n`)
  process.exit(1)
}

let config
try {
  config = loadConfig()
} catch (error) {
  fail(error)
}

// Each installs its own handlers before its first await; only then do these go. Removing the
// last handler first would give SIGTERM back its default action for that instant.
if (cluster.isPrimary) runPrimary(config, stopRequested).catch(fail)
else runWorker(config, stopRequested).catch(fail)
process.off('SIGTERM', noteStop)
process.off('SIGINT', noteInterrupt)
process.off('message', noteShutdown)
