/**
 * Where should a seat map be built: on the event loop (SERIALIZER=inline) or in the piscina
 * pool (worker)? For each hall size this measures
 *   (a) in process: the inline job (query + fast-json-stringify) against a pool round trip
 *       (the thread queries and serializes, the bytes are transferred back), plus stringify alone;
 *   (b) over HTTP: autocannon against a server (one worker unless --workers) per SERIALIZER.
 * Ratios are worker/inline within one run. Writes bench/results/<timestamp>-serializer/.
 *
 *   node --import tsx bench/serializer.ts [--quick] [--sizes 50,500,...] [--rounds N] [--duration S]
 *                                         [--connections N] [--workers N]
 */
import { mkdirSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import fastJsonStringify, { type Schema } from 'fast-json-stringify'
import type { Kysely } from 'kysely'
import type { Config } from '../src/config.js'
import { createConcertRepository } from '../src/concerts/repository.js'
import { SeatView, seatsSchema } from '../src/concerts/schemas.js'
import { createDb, dropDatabase, parseMysqlUrl } from '../src/db/connection.js'
import { prepareDatabase } from '../src/db/prepare.js'
import type { Database } from '../src/db/schema.js'
import { addSeats } from '../src/db/seed.js'
import { CONNECTIONS_PER_THREAD, createSeatMapPool } from '../src/concerts/serializer.js'
import { bearer } from '../test/helpers/http.js'
import { activeToken } from '../test/helpers/queue.js'
import { runLoad } from './lib/autocannon.js'
import { consoleTable, defaultResultsRoot, describeMachine, formatNumber, machineRows, markdownTable, type Machine, type Table } from './lib/report.js'
import { labConfig, startServer, stopAll, type Pinning } from './lib/server.js'

const BENCH_CONCERT_ID = 2

interface Plan {
  quick: boolean
  sizes: number[]
  /** Every measurement is repeated this often, the sizes and modes interleaved; tables show medians. */
  rounds: number
  /** (a): each measured loop, after a warm-up of a third of it. */
  inProcessMs: number
  /** (b): each measured autocannon run, after a warm-up of a quarter of it. */
  httpS: number
  connections: number
  /** (b): worker processes of each server. */
  workers: number
  /** (a): operations kept in flight, enough to keep every pool thread and connection busy. */
  concurrency: number
}

function readPlan(): Plan {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string' },
      workers: { type: 'string' },
    },
  })
  const numbers = (text: string) =>
    text.split(',').map((part) => {
      const value = Number(part)
      if (!Number.isInteger(value) || value <= 0) throw new Error(`expected positive integers, got "${text}"`)
      return value
    })
  const one = (text: string | undefined, otherwise: number) => (text === undefined ? otherwise : numbers(text)[0]!)
  return {
    quick: values.quick,
    sizes: values.sizes ? numbers(values.sizes) : [50, 500, 2000, 5000, 20_000],
    rounds: one(values.rounds, values.quick ? 1 : 3),
    inProcessMs: values.quick ? 300 : 1000,
    httpS: one(values.duration, values.quick ? 1.5 : 3),
    connections: one(values.connections, 10),
    workers: one(values.workers, 1),
    concurrency: 4,
  }
}

/** Field by field, the median of repeated measurements. */
function median<T extends { [K in keyof T]: number }>(runs: T[]): T {
  const result = {} as T
  for (const key of Object.keys(runs[0]!) as Array<keyof T>) {
    const values = runs.map((run) => run[key]).sort((a, b) => a - b)
    result[key] = values[(values.length - 1) >> 1]!
  }
  return result
}

interface LoopStats {
  ops: number
  opsPerS: number
  p50Ms: number
  p99Ms: number
  /** Event-loop busy time per operation: what the job costs the thread that serves HTTP. */
  mainThreadMsPerOp: number
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN

/** Runs `op` in a closed loop with `concurrency` in flight for `durationMs`. */
async function measureLoop(op: () => unknown, concurrency: number, durationMs: number): Promise<LoopStats> {
  const latencies: number[] = []
  const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve))
  await yieldToLoop()
  const eluBefore = performance.eventLoopUtilization()
  const start = performance.now()
  const deadline = start + durationMs
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const began = performance.now()
        await op()
        latencies.push(performance.now() - began)
      }
    }),
  )
  const elapsedMs = performance.now() - start
  await yieldToLoop()
  const busy = performance.eventLoopUtilization(eluBefore)
  latencies.sort((a, b) => a - b)
  return {
    ops: latencies.length,
    opsPerS: (latencies.length / elapsedMs) * 1000,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    mainThreadMsPerOp: busy.active / latencies.length,
  }
}

async function warmThenMeasure(op: () => unknown, concurrency: number, durationMs: number) {
  await measureLoop(op, concurrency, durationMs / 3)
  return measureLoop(op, concurrency, durationMs)
}

/** A fresh bench database: the seeded data plus one dated option per hall size. */
async function prepareHalls(config: Config, sizes: number[]): Promise<Map<number, number>> {
  await dropDatabase(config.MYSQL_URL)
  await prepareDatabase(config)
  const db = createDb(config.MYSQL_URL, 2)
  try {
    await db.insertInto('concerts').values({ id: BENCH_CONCERT_ID, title: 'Serializer bench', artist: 'Halls of every size', venue: 'Bench' }).execute()
    const halls = new Map<number, number>()
    for (const size of sizes) {
      const { insertId } = await db
        .insertInto('concert_details')
        .values({ concert_id: BENCH_CONCERT_ID, starts_at: new Date(Date.now() + 60 * 86_400_000), price: 50_000, total_seats: 0 })
        .executeTakeFirstOrThrow()
      halls.set(size, Number(insertId))
      await addSeats(db, Number(insertId), size)
    }
    return halls
  } finally {
    await db.destroy()
  }
}

type Mode = 'inline' | 'worker'

interface InProcessRow {
  seats: number
  jsonBytes: number
  /** The pool's bytes equal fast-json-stringify's output on the event loop. */
  identical: boolean
  stringify: LoopStats
  inline: LoopStats
  worker: LoopStats
  rounds: Array<Record<'stringify' | Mode, LoopStats>>
}

async function measureInProcess(config: Config, halls: Map<number, number>, plan: Plan): Promise<InProcessRow[]> {
  const db: Kysely<Database> = createDb(config.MYSQL_URL, plan.concurrency)
  const concerts = createConcertRepository(db)
  // The route's response schema, compiled as Fastify and the pool threads compile it.
  const stringify = fastJsonStringify(seatsSchema.response[200], { schema: { SeatView: SeatView as Schema } })
  // Encoded as the socket write would: a string left unread would never be flattened, and look free.
  const toBytes = (seats: unknown[]) => Buffer.from(stringify(seats))
  const pool = createSeatMapPool(config.MYSQL_URL, config.SERIALIZER_THREADS)
  const poolJson = async (concertDetailId: number) => {
    const json = await pool.run({ concertDetailId })
    return Buffer.from(json!.buffer, json!.byteOffset, json!.byteLength)
  }
  try {
    const measuredHalls = [...halls].map(([seats, concertDetailId]) => ({ seats, concertDetailId, rounds: [] as InProcessRow['rounds'] }))
    for (let round = 0; round < plan.rounds; round++) {
      for (const hall of measuredHalls) {
        const seatMap = (await concerts.seats(hall.concertDetailId))!
        const measured = {
          stringify: await warmThenMeasure(() => toBytes(seatMap), 1, plan.inProcessMs),
          inline: await warmThenMeasure(async () => toBytes((await concerts.seats(hall.concertDetailId))!), plan.concurrency, plan.inProcessMs),
          worker: await warmThenMeasure(() => poolJson(hall.concertDetailId), plan.concurrency, plan.inProcessMs),
        }
        hall.rounds.push(measured)
        process.stdout.write(`  in process, round ${round + 1}, ${hall.seats} seats: worker/inline ops/s ${formatNumber(measured.worker.opsPerS / measured.inline.opsPerS)}\n`)
      }
    }
    const rows: InProcessRow[] = []
    for (const { seats, concertDetailId, rounds } of measuredHalls) {
      const json = toBytes((await concerts.seats(concertDetailId))!)
      rows.push({
        seats,
        jsonBytes: json.length,
        identical: (await poolJson(concertDetailId)).equals(json),
        stringify: median(rounds.map((round) => round.stringify)),
        inline: median(rounds.map((round) => round.inline)),
        worker: median(rounds.map((round) => round.worker)),
        rounds,
      })
    }
    return rows
  } finally {
    await pool.destroy()
    await db.destroy()
  }
}

interface HttpStats {
  okPerS: number
  p50Ms: number
  p99Ms: number
  /** Non-2xx answers, connection errors and timeouts. */
  failures: number
}

interface HttpRow {
  seats: number
  /** Both servers answered the same bytes. */
  identical: boolean
  inline: HttpStats
  worker: HttpStats
  rounds: Array<Record<Mode, HttpStats>>
}

/**
 * One server per SERIALIZER, both up for the whole run; they take turns per size (the order
 * flips every round), so drift in the machine's other load falls on both alike.
 */
async function measureHttp(config: Config, halls: Map<number, number>, plan: Plan, pinning: Pinning): Promise<HttpRow[]> {
  const servers = {} as Record<Mode, { url: string; headers: Record<string, string> }>
  try {
    for (const mode of ['inline', 'worker'] as const) {
      const starting = performance.now()
      const server = await startServer('app', { ...config, SERIALIZER: mode }, { pinning })
      servers[mode] = { url: server.url, headers: bearer(await activeToken(server.url, 1, { timeoutMs: 30_000 })) }
      process.stdout.write(`  HTTP, SERIALIZER=${mode}: server ready in ${formatNumber((performance.now() - starting) / 1000)} s\n`)
    }
    const body = async (mode: Mode, path: string) => {
      const response = await fetch(`${servers[mode].url}${path}`, { headers: servers[mode].headers })
      return Buffer.from(await response.arrayBuffer())
    }
    const measuredHalls = [...halls].map(([seats, concertDetailId]) => ({ seats, path: `/concert/seats/${concertDetailId}`, rounds: [] as HttpRow['rounds'] }))
    for (let round = 0; round < plan.rounds; round++) {
      const order: Mode[] = round % 2 === 0 ? ['inline', 'worker'] : ['worker', 'inline']
      for (const hall of measuredHalls) {
        const measured = {} as Record<Mode, HttpStats>
        for (const mode of order) {
          const { url, headers } = servers[mode]
          const load = (durationS: number) =>
            runLoad({ url, connections: plan.connections, durationS, steps: [{ next: () => ({ method: 'GET', path: hall.path, headers }) }] })
          await load(plan.httpS / 4)
          const result = await load(plan.httpS)
          measured[mode] = {
            okPerS: result.ok / result.durationS,
            p50Ms: result.latencyMs.p50,
            p99Ms: result.latencyMs.p99,
            failures: result.non2xx + result.errors + result.timeouts,
          }
        }
        hall.rounds.push(measured)
        process.stdout.write(`  HTTP, round ${round + 1}, ${hall.seats} seats: worker/inline req/s ${formatNumber(measured.worker.okPerS / measured.inline.okPerS)}\n`)
      }
    }
    const rows: HttpRow[] = []
    for (const { seats, path, rounds } of measuredHalls) {
      rows.push({
        seats,
        identical: (await body('inline', path)).equals(await body('worker', path)),
        inline: median(rounds.map((round) => round.inline)),
        worker: median(rounds.map((round) => round.worker)),
        rounds,
      })
    }
    return rows
  } finally {
    await stopAll()
  }
}

/**
 * How much more throughput the pool must bring to count as paying: a tie goes to inline, which
 * spends less CPU in all, and on a shared machine ratios within 10% of 1 are noise.
 */
const PAYS = 1.1

/** The smallest size from which the pool pays (req/s) at that and every larger size measured. */
function crossover(rows: HttpRow[]): number | undefined {
  let from: number | undefined
  for (const row of [...rows].sort((a, b) => a.seats - b.seats)) {
    if (row.worker.okPerS >= PAYS * row.inline.okPerS) from ??= row.seats
    else from = undefined
  }
  return from
}

const ratio = (worker: number, inline: number) => formatNumber(worker / inline)
const ms = (value: number) => (value < 10 ? String(Math.round(value * 100) / 100) : formatNumber(value))

function tables(inProcess: InProcessRow[], http: HttpRow[]): { inProcess: Table; http: Table } {
  return {
    inProcess: {
      headers: [
        'seats', 'JSON KB', 'stringify p50 ms', 'inline ops/s', 'worker ops/s', 'worker/inline ops/s',
        'inline p99 ms', 'worker p99 ms', 'event loop ms/op inline', 'event loop ms/op worker', 'same bytes',
      ],
      rows: inProcess.map((row) => [
        row.seats,
        row.jsonBytes / 1024,
        ms(row.stringify.p50Ms),
        row.inline.opsPerS,
        row.worker.opsPerS,
        ratio(row.worker.opsPerS, row.inline.opsPerS),
        ms(row.inline.p99Ms),
        ms(row.worker.p99Ms),
        ms(row.inline.mainThreadMsPerOp),
        ms(row.worker.mainThreadMsPerOp),
        row.identical ? 'yes' : 'NO',
      ]),
    },
    http: {
      headers: ['seats', 'inline req/s', 'worker req/s', 'worker/inline req/s', 'inline p99 ms', 'worker p99 ms', 'worker/inline p99', 'non-2xx + errors', 'same bytes'],
      rows: http.map((row) => [
        row.seats,
        row.inline.okPerS,
        row.worker.okPerS,
        ratio(row.worker.okPerS, row.inline.okPerS),
        row.inline.p99Ms,
        row.worker.p99Ms,
        ratio(row.worker.p99Ms, row.inline.p99Ms),
        row.rounds.reduce((sum, round) => sum + round.inline.failures + round.worker.failures, 0),
        row.identical ? 'yes' : 'NO',
      ]),
    },
  }
}

/** <results root>/<timestamp>-serializer/, created; quick runs go where the lab keeps its quick runs. */
function runFolder(startedAt: Date, quick: boolean): string {
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z')
  const dir = join(defaultResultsRoot(quick), `${stamp}-serializer`)
  mkdirSync(dir, { recursive: true })
  return dir
}

interface SerializerRun {
  command: string
  startedAt: string
  finishedAt: string
  machine: Machine
  plan: Plan
  settings: Record<string, string | number>
  pinning: Pinning
  /** 1-minute load average at the start and the end: other work on the machine skews every number. */
  loadAverage: [start: number, end: number]
  inProcess: InProcessRow[]
  http: HttpRow[]
  crossoverSeats: number | null
}

function report(run: SerializerRun): string {
  const { machine } = run
  const table = tables(run.inProcess, run.http)
  const verdict =
    run.crossoverSeats === null
      ? `No crossover: at no size did the pool serve ${formatNumber((PAYS - 1) * 100)}% more seat maps per second than the event loop (at every larger size too), so offloading does not pay on this machine; auto should stay inline (a threshold above every real hall).`
      : `Crossover: from **${run.crossoverSeats} seats** up, the pool served at least ${formatNumber((PAYS - 1) * 100)}% more seat maps per second than the event loop at every size measured; that is the threshold auto should use (SERIALIZER_THRESHOLD_SEATS=${run.crossoverSeats}).`
  return [
    '# Seat map: inline or worker serialization',
    'For each hall size, the seat map (`GET /concert/seats/:id`) built on the event loop (`SERIALIZER=inline`: Kysely query, then the route schema\'s fast-json-stringify) against the piscina pool (`SERIALIZER=worker`: a thread runs the same query and serializer and transfers the JSON bytes back). Ratios are worker/inline in this run: above 1 for ops/s and req/s means the pool is faster; below 1 for p99 means it is faster.',
    `Run: \`${run.command}\`, ${run.startedAt} to ${run.finishedAt}. Every number is the median of ${run.plan.rounds} round(s), sizes and modes interleaved; each round's numbers are in \`results.json\`.`,
    '## Machine',
    markdownTable({
      headers: ['', ''],
      rows: [
        ...machineRows(machine),
        ['CPU pinning', run.pinning.note],
        ['load average (1 min) at start, end', run.loadAverage.map(formatNumber).join(', ')],
      ],
    }),
    '## Settings',
    markdownTable({ headers: ['setting', 'value'], rows: Object.entries(run.settings).map(([key, value]) => [key, String(value)]) }),
    '## (a) In process: the job alone',
    `Closed loop, ${run.plan.concurrency} operations in flight, ${run.plan.inProcessMs} ms per measurement after a warm-up. "stringify" is fast-json-stringify alone, plus the UTF-8 encoding a socket write does, on rows already in memory; "inline" is query + stringify on the event loop; "worker" is a pool round trip (query + stringify in the thread, bytes transferred). "event loop ms/op" is the main thread's busy time per operation: what each path takes from the thread that serves HTTP.`,
    markdownTable(table.inProcess),
    '## (b) Over HTTP: the route under load',
    `autocannon, ${run.plan.connections} connections, ${run.plan.httpS} s per size after a warm-up, against two servers (WORKERS=${run.plan.workers}, SERIALIZER_THREADS=${run.settings.SERIALIZER_THREADS}), one per SERIALIZER, taking turns. req/s counts 2xx answers only; "non-2xx + errors" sums every round. "same bytes": both servers answered identical bodies.`,
    markdownTable(table.http),
    '## Verdict',
    verdict,
    ...(Math.max(...run.loadAverage) > machine.cores
      ? [`**Caution:** the machine was busy with other work during this run (load average up to ${formatNumber(Math.max(...run.loadAverage))} on ${machine.cores} cores); the ratios are indicative, rerun on a quiet machine before acting on them.`]
      : []),
    '## How to read this',
    [
      '- Offloading cannot make the work cheaper: the thread does the same query and serialization, plus a transfer. It pays only when the event loop is the bottleneck and a core is free for the pool; on a box whose cores are all busy with cluster workers, MySQL and the load generator, it mostly moves work around.',
      '- Small maps lose to the fixed cost of a round trip to a thread (message passing, scheduling); large maps can win because the event loop no longer parses thousands of rows.',
      '- On a machine shared with other work the numbers are noisy: compare ratios within a run, not absolute numbers across runs, and treat ratios within 10% of 1 as a tie.',
    ].join('\n'),
  ].join('\n\n')
}

async function main() {
  const plan = readPlan()
  const startedAt = new Date()
  const loadAtStart = loadavg()[0]!
  const serverSettings = {
    WORKERS: plan.workers,
    SERIALIZER_THREADS: 2,
    SEED_USERS: 10,
    ADMIT_INTERVAL_MS: 100,
    // Measure throughput, not shedding: a 503 would count as a fast answer.
    SHED_LOAD: 'false',
  }
  const config = labConfig('serializer', 10, serverSettings)
  // Not pinned: the pool threads need the second core that pinning would give the load generator.
  const pinning: Pinning = { applied: false, note: 'not applied: the pool threads need every core', serverCpuCount: availableParallelism() }
  const dir = runFolder(startedAt, plan.quick)

  process.stdout.write(`serializer bench${plan.quick ? ' (quick)' : ''}: sizes ${plan.sizes.join(', ')}; writing ${dir}\n`)
  const halls = await prepareHalls(config, plan.sizes)
  process.stdout.write(`  halls seeded in ${formatNumber((Date.now() - startedAt.getTime()) / 1000)} s\n`)
  const machine = await describeMachine(config)
  const inProcess = await measureInProcess(config, halls, plan)
  const http = await measureHttp(config, halls, plan, pinning)
  const found = crossover(http)

  const run: SerializerRun = {
    command: ['node --import tsx bench/serializer.ts', ...process.argv.slice(2)].join(' '),
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine,
    plan,
    settings: { database: parseMysqlUrl(config.MYSQL_URL).database, REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX, ...serverSettings, CONNECTIONS_PER_THREAD, CONCERT_CACHE_MS: config.CONCERT_CACHE_MS },
    pinning,
    loadAverage: [loadAtStart, loadavg()[0]!],
    inProcess,
    http,
    crossoverSeats: found ?? null,
  }
  await writeFile(join(dir, 'results.json'), `${JSON.stringify(run, null, 2)}\n`)
  await writeFile(join(dir, 'report.md'), `${report(run)}\n`)
  const table = tables(inProcess, http)
  process.stdout.write(`\n(a) in process\n${consoleTable(table.inProcess)}\n\n(b) over HTTP\n${consoleTable(table.http)}\n\n`)
  process.stdout.write(`crossover: ${found === undefined ? 'none (offloading never paid)' : `${found} seats`}\nreport: ${join(dir, 'report.md')}\n`)
}

main().catch(async (error) => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`)
  await stopAll()
  process.exit(1)
})
