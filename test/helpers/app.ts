import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { createDb } from '../../src/db/connection.js'
import { prepareDatabase } from '../../src/db/prepare.js'
import type { Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.js'
import { dropStore, ownStore } from './store.js'
import { TEST_IDENTITY_SECRET } from './jwt.js'

/**
 * A config of the test's own: a fresh database and Redis key prefix, so test files run in
 * parallel against one MySQL and one Redis without seeing each other.
 */
export function testConfig(overrides: Record<string, string | number | boolean> = {}): Config {
  return loadConfig({
    ...process.env,
    ...ownStore('test', randomBytes(4).toString('hex')),
    LOG_LEVEL: 'silent',
    SEED_USERS: '200',
    SHED_LOAD: 'false',
    TOKEN_SECRET: 'test-secret-test-secret-test-secret-0123',
    IDENTITY_JWT_SECRET: TEST_IDENTITY_SECRET,
    // Limits on, but high enough for the tests that fire one user's calls 50 at a time.
    RATE_LIMIT_WAIT_PER_MIN: '10000',
    RATE_LIMIT_PAY_PER_MIN: '10000',
    RATE_LIMIT_HOLD_PER_MIN: '10000',
    ...Object.fromEntries(Object.entries(overrides).map(([k, v]) => [k, String(v)])),
  })
}

/** Prepares the test's database and removes it (and its Redis keys) when the test ends. */
export async function prepareTestData(t: Test, config: Config): Promise<Kysely<Database>> {
  await prepareDatabase(config)
  const db = createDb(config.MYSQL_URL, 5)
  t.teardown(async () => {
    await db.destroy()
    await dropStore(config)
  })
  return db
}

export interface TestContext {
  app: FastifyInstance
  db: Kysely<Database>
  config: Config
}

/** Builds the real app on its own database; closed and cleaned up when the test ends. */
export async function buildTestApp(t: Test, overrides: Record<string, string | number | boolean> = {}): Promise<TestContext> {
  const config = testConfig(overrides)
  const db = await prepareTestData(t, config)
  const app = await buildApp(config, { logger: false })
  t.teardown(() => app.close())
  return { app, db, config }
}

/** `count` app instances on one database and one Redis, as workers or hosts are, each listening. */
export async function appInstances(t: Test, overrides: Record<string, string | number | boolean>, count = 2) {
  const config = testConfig(overrides)
  const db = await prepareTestData(t, config)
  const apps: FastifyInstance[] = []
  const urls: string[] = []
  for (let i = 0; i < count; i++) {
    const app = await buildApp(config, { logger: false })
    t.teardown(() => app.close())
    apps.push(app)
    urls.push(await listen(app))
  }
  return { config, db, apps, urls }
}

/** Listens on a free port so tests can send real concurrent HTTP requests. */
export async function listen(app: FastifyInstance): Promise<string> {
  return app.listen({ port: 0, host: '127.0.0.1' })
}
