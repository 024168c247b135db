import cluster from 'node:cluster'
import { config as loadDotenv } from 'dotenv'
import { ConfigError, loadConfig, type Config } from './config.js'
import { ServiceDiscoveryError } from './runtime/services.js'
import { runPrimary } from './runtime/primary.js'
import { runWorker } from './runtime/worker.js'

loadDotenv({ quiet: true })

function fail(error: unknown): never {
  const known = error instanceof ConfigError || error instanceof ServiceDiscoveryError
  process.stderr.write(`seatrush: ${known ? (error as Error).message : (error as Error)?.stack ?? String(error)}\n`)
  process.exit(1)
}

let config: Config
try {
  config = loadConfig()
} catch (error) {
  fail(error)
}

if (cluster.isPrimary) runPrimary(config).catch(fail)
else runWorker(config).catch(fail)
