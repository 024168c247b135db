import { readFileSync, readdirSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { configToEnv, type Config } from '../src/config.js'
import { sql } from 'kysely'
import { createDb, ensureDatabase } from '../src/db/connection.js'
import { freePort } from '../src/runtime/services.js'
import { dropStore } from './helpers/store.js'
import { testConfig } from './helpers/app.js'
import { spawnServer, type LogLine, type ServerChild } from './helpers/server-process.js'
import { waitFor } from './helpers/wait.js'

interface TreeProcess {
  pid: number
  /** Clock ticks after boot it started at: tells the process from a later one given its pid. */
  startedAt: string
  command: string
}

/** A process's parent pid and start time, or undefined once it is gone or a zombie (exited, only its parent's wait missing). */
function stat(pid: number): { ppid: number; startedAt: string } | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')
    if (fields[0] === 'Z') return undefined
    return { ppid: Number(fields[1]), startedAt: fields[19]! }
  } catch {
    return undefined
  }
}

/** A process's program and first argument. */
const commandOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').slice(0, 2).join(' ')

/**
 * Every process the server started, from the primary down: those whose parent is one of them,
 * seen while the parent lived, and those carrying `marker` in their environment. Both, since an
 * orphan's parent becomes init, and redis-server overwrites its environment with its title.
 */
function watchTree(rootPid: number, marker: string) {
  const seen = new Map<number, TreeProcess>()
  const scan = () => {
    for (const entry of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(entry)) continue
      const pid = Number(entry)
      const known = seen.get(pid)
      if (known) {
        // A child is seen between its fork and its exec under its parent's command line: read it
        // again until it is gone, or a redis-server would stay named after node.
        try {
          // A process that exits between the two reads leaves an empty command line: keep the last name.
          if (stat(pid)?.startedAt === known.startedAt) known.command = commandOf(pid) || known.command
        } catch {}
        continue
      }
      const info = stat(pid)
      if (!info) continue
      let marked = pid === rootPid || seen.has(info.ppid)
      try {
        marked ||= readFileSync(`/proc/${pid}/environ`, 'latin1').includes(marker)
        if (marked) seen.set(pid, { pid, startedAt: info.startedAt, command: commandOf(pid) })
      } catch {}
    }
  }
  scan()
  const timer = setInterval(scan, 20)
  return {
    /** Every process of the tree seen so far. */
    all: () => [...seen.values()],
    /** Those still running (the same process, not a new one given its pid). */
    alive: () => {
      scan()
      return [...seen.values()].filter((known) => stat(known.pid)?.startedAt === known.startedAt)
    },
    stop: () => clearInterval(timer),
  }
}

/** Whether the process runs the server's entry yet: it names itself there (process.title). */
const runsEntry = (pid: number) => commandOf(pid).startsWith('seatrush-primary')

interface Started {
  server: ServerChild
  logs: LogLine[]
  tree: ReturnType<typeof watchTree>
  config: Config
  seen: (msg: string) => boolean
}

/**
 * Starts `npm start`'s entry as a child with the test's own store (or `reuse`, an earlier start's);
 * everything it started is killed at the end.
 */
async function start(t: Test, overrides: Record<string, string | number> = {}, env: Record<string, string> = {}, reuse?: Config): Promise<Started> {
  const config = reuse ?? testConfig({ LOG_LEVEL: 'info', WORKERS: 2, SHUTDOWN_TIMEOUT_MS: 60_000, ...overrides })
  const marker = `SEATRUSH_STARTUP_TEST=${randomBytes(6).toString('hex')}`
  const [name, value] = marker.split('=') as [string, string]
  const server = spawnServer({
    command: [process.execPath, '--import', 'tsx', 'src/main.ts'],
    env: { ...process.env, ...configToEnv(config), PORT: String(await freePort()), HOST: '127.0.0.1', EMBEDDED_SERVICES: 'never', ...env, [name]: value },
    detached: true,
  })
  const tree = watchTree(server.pid, marker)
  const logs: LogLine[] = []
  server.onLine((line) => logs.push(line))
  t.teardown(async () => {
    tree.stop()
    for (const { pid } of tree.alive()) process.kill(pid, 'SIGKILL')
    await dropStore(config)
  })
  return { server, logs, tree, config, seen: (msg) => logs.some((line) => line.msg === msg) }
}

/** No process the server started outlives it: each gets a few seconds to finish exiting. */
async function assertNoOrphan(t: Test, { tree }: Started) {
  const left = await waitFor('every process it started to be gone', () => tree.alive().length === 0, { timeoutMs: 5000 }).catch(() => tree.alive())
  t.same(left, true, `no orphan process is left (of ${tree.all().map((p) => p.command.split(' ')[0]!.split('/').pop()).join(', ')})`)
}

/** The primary exited 0, having served nothing, and left no process of its own behind. */
async function assertCleanExit(t: Test, started: Started, withinMs: number) {
  const { server, seen } = started
  const signalledAt = Date.now()
  process.kill(server.pid, 'SIGTERM')
  const exit = await server.waitForExit(withinMs)
  t.same(exit, { code: 0, signal: null }, `the primary exits 0 (${Date.now() - signalledAt} ms after SIGTERM)`)
  t.notOk(seen('seatrush is serving'), 'it never announced serving')
  t.notOk(seen('worker died; replacing it'), 'no worker was replaced')
  await assertNoOrphan(t, started)
}

t.test('SIGTERM 100 ms after the entry began to run, its modules still loading: a clean exit, no orphan', async (t) => {
  // Node alone needs a few hundred ms to boot on a loaded machine, and a signal before any code
  // runs takes the default action in any program; so the clock starts when the entry runs.
  const started = await start(t)
  await started.server.waitUntil('the entry to run', () => runsEntry(started.server.pid), 10_000)
  const runningAt = Date.now()
  await waitFor('100 ms to pass', () => Date.now() - runningAt >= 100)
  t.notOk(started.logs.length, 'nothing logged yet: still loading')
  await assertCleanExit(t, started, 30_000)
})

t.test('SIGTERM during seeding: the seed stops after its batch, a clean exit, and the next start completes it', async (t) => {
  const users = 300_000
  const started = await start(t, { SEED_USERS: users })
  const db = createDb(started.config.MYSQL_URL, 1)
  t.teardown(() => db.destroy())
  const seeded = async () => Number((await db.selectFrom('users').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
  await started.server.waitUntil('the primary to begin preparing the database', () => started.seen('services found'), 30_000)
  await waitFor('the first users to be seeded', async () => (await seeded().catch(() => 0)) > 0, { timeoutMs: 60_000, intervalMs: 20 })
  await assertCleanExit(t, started, 30_000)
  t.ok(started.seen('start-up cancelled; bye'), 'the start-up was cancelled, not drained')
  const cutShort = await seeded()
  t.ok(cutShort < users, `the seed stopped early: ${cutShort} of ${users} users`)

  const again = await start(t, {}, {}, started.config)
  await again.server.waitUntil('the next start to serve', () => again.seen('seatrush is serving'), 120_000)
  t.equal(await seeded(), users, 'the next start seeded the rest')
  const details = await db.selectFrom('concert_details').select(['id', 'total_seats']).execute()
  const seats = await db.selectFrom('seats').select(['concert_detail_id', ({ fn }) => fn.countAll<number>().as('n')]).groupBy('concert_detail_id').execute()
  const perDetail = new Map(seats.map((row) => [row.concert_detail_id, Number(row.n)]))
  const short = details.filter((d) => d.total_seats !== started.config.SEATS_PER_DETAIL || perDetail.get(d.id) !== d.total_seats)
  t.same(short, [], 'every dated option has all its seats, counted in total_seats')
  t.equal((await again.server.stop(60_000)).code, 0, 'and it stops cleanly')
})

t.test('a start-up that fails after starting a private redis-server: exit 1, the redis-server stopped with it', async (t) => {
  // A table in the way of the first migration fails the preparation after the services were found.
  const config = testConfig({ LOG_LEVEL: 'info', WORKERS: 2 })
  await ensureDatabase(config.MYSQL_URL)
  const db = createDb(config.MYSQL_URL, 1)
  await sql`CREATE TABLE users (squatter INT)`.execute(db)
  await db.destroy()
  const started = await start(t, {}, { EMBEDDED_SERVICES: 'auto', REDIS_URL: `redis://127.0.0.1:${await freePort()}` }, config)
  const exit = await started.server.waitForExit(60_000)
  t.equal(exit.code, 1, 'the primary exits 1')
  const found = started.logs.find((line) => line.msg === 'services found')
  t.match(found, { redis: /^private redis-server/ }, 'it failed after its private redis-server answered')
  t.match(started.server.tail(), /already exists/, 'because of the table in the way')
  await assertNoOrphan(t, started)
})

t.test("SIGTERM while the workers are still starting: they close without listening, nobody is killed at the timeout", async (t) => {
  const started = await start(t)
  await started.server.waitUntil('the primary to fork the workers', () => started.seen('database ready'), 30_000)
  await started.server.waitUntil('both workers to run', () => started.tree.all().length >= 3, 10_000)
  // SHUTDOWN_TIMEOUT_MS is 60 s: a worker that missed the stop would be SIGKILLed only after it.
  await assertCleanExit(t, started, 30_000)
  t.ok(started.seen('draining workers'), 'the primary drained the workers it had forked')
})

t.test('SIGTERM while a private redis-server is starting: it is stopped with the primary', async (t) => {
  const started = await start(t, {}, { EMBEDDED_SERVICES: 'auto', REDIS_URL: `redis://127.0.0.1:${await freePort()}` })
  await started.server.waitUntil(
    'the private redis-server to be spawned',
    () => started.tree.all().some((p) => p.command.includes('redis-server')),
    30_000,
  )
  await assertCleanExit(t, started, 30_000)
})
