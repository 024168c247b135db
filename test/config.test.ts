import t from 'tap'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { ConfigError, loadConfig } from '../src/config.js'
import { readmeWithConfigTable, renderEnvExample } from '../scripts/env-example.js'

t.test('defaults follow the contract', async (t) => {
  const config = loadConfig({})
  t.equal(config.PORT, 8080)
  t.equal(config.MYSQL_URL, 'mysql://root@127.0.0.1:3306/seatrush')
  t.equal(config.AUTH_MODE, 'token')
  t.equal(config.SEED_USERS, 1000)
  t.equal(config.SEATS_PER_DETAIL, 50)
  t.equal(config.SHED_LOAD, true)
  t.ok(config.WORKERS >= 1)
})

t.test('strings from the environment become typed values', async (t) => {
  const config = loadConfig({ PORT: '9090', SHED_LOAD: 'false', MAX_EVENT_LOOP_UTILIZATION: '0.5' })
  t.equal(config.PORT, 9090)
  t.equal(config.SHED_LOAD, false)
  t.equal(config.MAX_EVENT_LOOP_UTILIZATION, 0.5)
})

t.test('a bad value is refused naming its variable', async (t) => {
  const cases: Record<string, string> = {
    PORT: 'eighty',
    WORKERS: '0',
    MYSQL_URL: 'postgres://x',
    AUTH_MODE: 'none',
    TOKEN_SECRET: 'short',
    MAX_ACTIVE: '-5',
    SERIALIZER: 'fast',
    SHED_LOAD: 'maybe',
    REDIS_KEY_PREFIX: 'has}brace',
    REDIS_CLUSTER_NODES: '127.0.0.1',
    MYSQL_REPLICA_URL: 'redis://x',
    REPLICA_MAX_LAG_MS: '0',
  }
  for (const [variable, value] of Object.entries(cases)) {
    t.throws(() => loadConfig({ [variable]: value }), ConfigError, variable)
    try {
      loadConfig({ [variable]: value })
    } catch (error) {
      t.match((error as Error).message, new RegExp(`\\b${variable}\\b`), `${variable} is named`)
    }
  }
})

t.test('start-up with a broken config exits 1 with the variable in the message', async (t) => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, WORKERS: 'lots', LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    timeout: 30_000,
  })
  t.equal(result.status, 1)
  t.match(result.stderr, /WORKERS/)
})

t.test('.env.example documents every variable', async (t) => {
  t.equal(readFileSync('.env.example', 'utf8'), renderEnvExample(), 'regenerate with npm run env:example')
})

t.test('the README documents every variable', async (t) => {
  const readme = readFileSync('README.md', 'utf8')
  t.equal(readme, readmeWithConfigTable(readme), 'regenerate with npm run env:example')
})
