import { loadConfig } from '../../src/config.js'
import { buildThin } from './build-thin.js'
import { serveReference } from './serve.js'

// The thin reference as the lab runs it: one worker process per WORKERS, like the app.
await serveReference('thin', () => buildThin(loadConfig()))
