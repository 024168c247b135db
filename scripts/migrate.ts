/** `npm run migrate`: creates the database when missing and applies pending migrations. */
import { config as loadDotenv } from 'dotenv'
import { loadConfig } from '../src/config.js'
import { prepareDatabase } from '../src/db/prepare.js'

loadDotenv({ quiet: true })
const { applied } = await prepareDatabase(loadConfig(), { migrate: true, seed: false })
console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date')
