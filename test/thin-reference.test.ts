import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { Pipeline, Redis } from 'ioredis'
import mysql from 'mysql2'
import { buildThin } from '../bench/reference/build-thin.js'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config.js'
import { SEED_CONCERT_ID } from '../src/db/seed.js'
import { prepareTestData, testConfig } from './helpers/app.js'
import { bearer } from './helpers/http.js'
import { identityToken } from './helpers/jwt.js'
import { OPEN_QUEUE } from './helpers/queue.js'
import { storeBeside } from './helpers/store.js'
import { waitFor } from './helpers/wait.js'

// The bench compares each endpoint with the thin reference; that is only fair while both do the
// same work. One booking is run on each, and every MySQL statement and Redis command a call sends
// is recorded (in the order sent) through the two client libraries both servers use.
t.setTimeout(120_000)

const calls = new AsyncLocalStorage<{ prefix: string; sent: string[] }>()

// Literal values differ between runs (times, ids): a statement is its text and its values' types.
const valueType = (value: unknown) => (value === null ? 'null' : value instanceof Date ? 'date' : typeof value)

type Query = (this: unknown, sql: unknown, values?: unknown, cb?: unknown) => unknown
const baseConnection = Object.getPrototypeOf(mysql.Connection.prototype) as { query: Query; execute: Query }
const query = baseConnection.query
baseConnection.query = function (this: unknown, sql: unknown, values?: unknown, cb?: unknown) {
  const text = typeof sql === 'string' ? sql : (sql as { sql: string }).sql
  const args = (typeof sql === 'string' ? values : (sql as { values?: unknown }).values) as unknown[] | undefined
  // A new connection's session set-up runs once per connection, whichever call opened it.
  if (!/^SET time_zone/.test(text)) calls.getStore()?.sent.push(`sql ${text} [${(Array.isArray(args) ? args : []).map(valueType).join(', ')}]`)
  return query.call(this, sql, values, cb)
}
// Neither server prepares statements; one that starts to is a difference too.
const execute = baseConnection.execute
baseConnection.execute = function (this: unknown, sql: unknown, values?: unknown, cb?: unknown) {
  calls.getStore()?.sent.push(`prepared ${typeof sql === 'string' ? sql : (sql as { sql: string }).sql}`)
  return execute.call(this, sql, values, cb)
}

type SendCommand = (this: unknown, command: { name: string; args: unknown[] }, ...rest: unknown[]) => unknown
const record = (command: { name: string; args: unknown[] }) => {
  const store = calls.getStore()
  if (!store) return
  const [first = '', ...args] = command.args.map((arg) => String(arg).replaceAll(store.prefix, '<prefix>'))
  // A script Redis did not know yet is sent whole after its EVALSHA failed: that EVALSHA again.
  const line = command.name === 'eval' ? `redis evalsha ${[createHash('sha1').update(first).digest('hex'), ...args].join(' ')}` : `redis ${command.name} ${[first, ...args].join(' ')}`
  if (command.name !== 'eval' || !store.sent.includes(line)) store.sent.push(line)
}
// A command is recorded where the call issued it: commands put in a pipeline (a MULTI, or the
// auto-pipeline that batches one event-loop turn's commands) are recorded as they are queued, in
// the caller's context, and not again when the batch goes out, in whichever context sends it.
const redisPrototype = Redis.prototype as unknown as { sendCommand: SendCommand }
const sendCommand = redisPrototype.sendCommand
redisPrototype.sendCommand = function (command, ...rest) {
  if (!(rest[0] as { isPipeline?: boolean } | undefined)?.isPipeline) record(command)
  return sendCommand.call(this, command, ...rest)
}
const pipelinePrototype = Pipeline.prototype as unknown as { sendCommand: SendCommand }
const queueCommand = pipelinePrototype.sendCommand
pipelinePrototype.sendCommand = function (command, ...rest) {
  record(command)
  return queueCommand.call(this, command, ...rest)
}
t.teardown(() => {
  baseConnection.query = query
  baseConnection.execute = execute
  redisPrototype.sendCommand = sendCommand
  pipelinePrototype.sendCommand = queueCommand
})

type Steps = Record<string, string[]>

/** One user's whole booking on `server`: the statements each call sent, by call. */
async function book(t: Test, server: FastifyInstance, config: Config): Promise<Steps> {
  const userId = 7
  const steps: Steps = {}
  const call = async (step: string, request: InjectOptions, expected = 200) => {
    const sent: string[] = []
    // Awaited inside run(): inject answers a thenable that starts the request when awaited.
    const reply = await calls.run({ prefix: config.REDIS_KEY_PREFIX, sent }, async () => await server.inject(request))
    t.equal(reply.statusCode, expected, `${step} answers ${expected}`, { body: reply.body })
    steps[step] = sent
    return reply.json()
  }
  const identity = bearer(identityToken(userId))
  await call('balance', { method: 'GET', url: `/point/${userId}`, headers: identity })
  await call('charge', { method: 'PATCH', url: '/point', headers: identity, payload: { userId, charge: 1000 } })
  const { token } = await call('join', { method: 'POST', url: '/concert/wait', headers: identity, payload: { userId } })
  const queueToken = bearer(token)
  // Polled until admitted; the poll that saw ACTIVE is the one compared (every poll is the same call).
  await waitFor('the user admitted', async () => (await call('poll', { method: 'GET', url: '/concert/wait', headers: queueToken })).status === 'ACTIVE')
  const days = await call('dates', { method: 'GET', url: `/concert/reservation/days/${SEED_CONCERT_ID}`, headers: queueToken })
  const concertDetailId = days[0].concertDetailId as number
  await call('seat map', { method: 'GET', url: `/concert/seats/${concertDetailId}`, headers: queueToken })
  const seat = { userId, concertDetailId, seatNo: 3 }
  await call('hold', { method: 'PATCH', url: '/concert/seat', headers: queueToken, payload: seat })
  await call('pay', { method: 'POST', url: '/concert/reservation/days', headers: queueToken, payload: seat })
  // The dates' three reads go out at once: which takes a pooled connection first is chance, so
  // their order is not compared (what each server sends to Redis is, in order).
  steps.dates = [...steps.dates!.filter((line) => !line.startsWith('sql ')), ...steps.dates!.filter((line) => line.startsWith('sql ')).sort()]
  return steps
}

t.test('the thin reference sends the same statements as the app for a whole booking', async (t) => {
  // The lab's settings: everyone admitted at once, no rate limits (their counters are left out of both).
  // The app's read memo (ACTIVE_READ_MEMO_MS) is off: the thin reference asks the queue on every read.
  const settings = { ...OPEN_QUEUE, RATE_LIMIT_WAIT_PER_MIN: 0, RATE_LIMIT_PAY_PER_MIN: 0, RATE_LIMIT_HOLD_PER_MIN: 0, ACTIVE_READ_MEMO_MS: 0 }
  const appConfig = testConfig(settings)
  const thinConfig = { ...appConfig, ...storeBeside(appConfig, 'thin') }
  await prepareTestData(t, appConfig)
  await prepareTestData(t, thinConfig)

  const app = await buildApp(appConfig, { logger: false })
  t.teardown(() => app.close())
  const thin = await buildThin(thinConfig)
  t.teardown(() => thin.close())
  await thin.ready()

  const appSteps = await book(t, app, appConfig)
  const thinSteps = await book(t, thin, thinConfig)
  t.same(Object.keys(thinSteps), Object.keys(appSteps), 'the same calls')
  for (const [step, sent] of Object.entries(appSteps)) {
    t.ok(sent.length > 0, `${step}: the app sent something`)
    t.same(thinSteps[step], sent, `${step}: the thin reference sends what the app sends, in order`)
  }
  t.ok(appSteps.hold!.some((line) => / for update/.test(line)), 'the hold takes the user row lock')
})
