/** `npm run seed`: migrates, then seeds users, concert 1 and its seats (idempotent). */
import { config as loadDotenv } from 'dotenv'
import { loadConfig } from '../src/config.js'
import { prepareDatabase } from '../src/db/prepare.js'

loadDotenv({ quiet: true })
const config = loadConfig()
await prepareDatabase(config)
console.log(`seeded: users 1..${config.SEED_USERS}, concert 1 with ${config.SEED_DETAILS} dated options of ${config.SEATS_PER_DETAIL} seats`)
