/**
 * `npm test`: finds MySQL and Redis exactly as `npm start` does (starting private instances
 * under .data/ when needed), then runs the tap suite against them. Extra arguments go to tap.
 */
import { spawn } from 'node:child_process'
import { config as loadDotenv } from 'dotenv'
import { loadConfig } from '../src/config.js'
import { discoverServices } from '../src/runtime/services.js'

loadDotenv({ quiet: true })
const config = loadConfig()
const services = await discoverServices({
  mysqlUrl: config.MYSQL_URL,
  redisUrl: config.REDIS_URL,
  embedded: config.EMBEDDED_SERVICES,
  log: (message) => console.log(`test: ${message}`),
})
console.log(`test: MySQL from ${services.origin.mysql}; Redis from ${services.origin.redis}`)

const tap = spawn('tap', process.argv.slice(2), {
  stdio: 'inherit',
  env: { ...process.env, MYSQL_URL: services.mysqlUrl, REDIS_URL: services.redisUrl },
})
const code: number = await new Promise((done) => tap.on('exit', (exitCode, signal) => done(exitCode ?? (signal ? 1 : 0))))
await services.stop()
process.exit(code)
