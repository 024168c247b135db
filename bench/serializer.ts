/**
 * `npm run bench:serializer`: where should a seat map be built, on the event loop
 * (SERIALIZER=inline) or in the piscina pool (worker)? For each hall size it measures
 *   (a) in process: the inline job (query + fast-json-stringify) against a pool round trip
 *       (the thread queries and serializes, the bytes are transferred back), plus stringify alone;
 *   (b) over HTTP: autocannon against a server (one worker unless --workers) per SERIALIZER;
 *   (c) the map's query alone: mysqld's CPU per map through the index that holds every column
 *       it reads, against the plan before that index (a primary-key read per seat).
 * Ratios are worker/inline (and per-seat/index) within one run. Its own flags: --sizes and --rounds (see --help).
 */
import { performance } from 'node:perf_hooks'
import { setImmediate } from 'node:timers/promises'
import type { Config } from '../src/config.js'
import { createConcertRepository, seatMapQuery } from '../src/concerts/repository.js'
import { encodeSeatMap } from '../src/concerts/encoded.js'
import { CONNECTIONS_PER_THREAD, createSeatMapPool } from '../src/concerts/serializer.js'
import { createDb } from '../src/db/connection.js'
import { bearer, send } from '../test/helpers/http.js'
import { activeToken } from '../test/helpers/queue.js'
import { runLoad } from './lib/autocannon.js'
import { lineChart } from './lib/charts.js'
import { resetHalls } from './lib/fixture.js'
import { HALL_CONCERT_ID } from '../test/helpers/halls.js'
import { runLab, type Lab } from './lib/lab.js'
import { percentile } from './lib/latency.js'
import { DATABASE_NAMES, findService, startCpuMeter } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, startServer, stopAll } from './lib/server.js'

interface Plan {
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


/** Runs `op` in a closed loop with `concurrency` in flight for `durationMs`. */
async function measureLoop(op: () => unknown, concurrency: number, durationMs: number): Promise<LoopStats> {
  const latencies: number[] = []
  await setImmediate()
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
  await setImmediate()
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

type Mode = 'inline' | 'worker'

interface InProcess {
  jsonBytes: number
  /** The pool's bytes equal fast-json-stringify's output on the event loop. */
  identical: boolean
  stringify: LoopStats
  inline: LoopStats
  worker: LoopStats
  rounds: Array<Record<'stringify' | Mode, LoopStats>>
}

interface HttpStats {
  okPerS: number
  p50Ms: number
  p99Ms: number
  /** Non-2xx answers, connection errors and timeouts. */
  failures: number
}

interface OverHttp {
  /** Both servers answered the same bytes. */
  identical: boolean
  inline: HttpStats
  worker: HttpStats
  rounds: Array<Record<Mode, HttpStats>>
}

interface QueryStats {
  opsPerS: number
  p50Ms: number
  /** CPU mysqld used per query (utime + stime over the measurement). */
  mysqlMsPerOp: number
}

type ReadPath = 'index' | 'rowPerSeat'

interface QueryPlans {
  /** The index MySQL chose for the map's query, as EXPLAIN names it (null: a table scan). */
  chosenIndex: string | null
  /** The query as the repository sends it. */
  index: QueryStats
  /** The same query told to find the seats by (option, seat) and read each row (FORCE INDEX). */
  rowPerSeat: QueryStats
  rounds: Array<Record<ReadPath, QueryStats>>
}

interface SerializerRow {
  seats: number
  inProcess: InProcess
  http: OverHttp
  query: QueryPlans
}

/** Halls as measured: their size and the dated option that holds them. */
type Halls = Array<{ seats: number; concertDetailId: number }>

async function measureInProcess(config: Config, halls: Halls, plan: Plan, { progress }: Lab): Promise<InProcess[]> {
  const db = createDb(config.MYSQL_URL, plan.concurrency)
  const concerts = createConcertRepository(db)
  // Both views serialized and hashed, as the seat-map cache builds them on a change.
  const encoded = async (concertDetailId: number) => encodeSeatMap(concertDetailId, (await concerts.seatMap(concertDetailId))!)
  const pool = createSeatMapPool(config.MYSQL_URL, config.SERIALIZER_THREADS)
  const poolEncoded = async (concertDetailId: number) => (await pool.run({ concertDetailId }))!
  try {
    const rounds = halls.map((): InProcess['rounds'] => [])
    for (let round = 0; round < plan.rounds; round++) {
      for (const [index, { seats, concertDetailId }] of halls.entries()) {
        const seatMap = (await concerts.seatMap(concertDetailId))!
        const measured = {
          stringify: await warmThenMeasure(() => encodeSeatMap(concertDetailId, seatMap), 1, plan.inProcessMs),
          inline: await warmThenMeasure(() => encoded(concertDetailId), plan.concurrency, plan.inProcessMs),
          worker: await warmThenMeasure(() => poolEncoded(concertDetailId), plan.concurrency, plan.inProcessMs),
        }
        rounds[index]!.push(measured)
        progress(`in process, round ${round + 1}, ${seats} seats: worker/inline ops/s ${formatNumber(measured.worker.opsPerS / measured.inline.opsPerS)}`)
      }
    }
    const results: InProcess[] = []
    for (const [index, { concertDetailId }] of halls.entries()) {
      const json = Buffer.from((await encoded(concertDetailId)).full.bytes)
      const measured = rounds[index]!
      results.push({
        jsonBytes: json.length,
        identical: Buffer.from((await poolEncoded(concertDetailId)).full.bytes).equals(json),
        stringify: median(measured.map((round) => round.stringify)),
        inline: median(measured.map((round) => round.inline)),
        worker: median(measured.map((round) => round.worker)),
        rounds: measured,
      })
    }
    return results
  } finally {
    await pool.destroy()
    await db.destroy()
  }
}

/**
 * The map's query alone, as the repository sends it and as MySQL ran it before the index that
 * holds every column it reads (0007-seats-detail-map): through the index on (option, seat), then
 * each seat's row by its primary key. mysqld's CPU per query is what the rush's bottleneck pays.
 */
async function measureQueries(config: Config, halls: Halls, plan: Plan, { progress }: Lab): Promise<QueryPlans[]> {
  const db = createDb(config.MYSQL_URL, plan.concurrency)
  const mysqld = findService(Number(new URL(config.MYSQL_URL).port || 3306), DATABASE_NAMES).map((found) => found.pid)
  if (!mysqld.length) throw new Error('no mariadbd or mysqld process found on this machine: its CPU cannot be measured')
  const compiled = (concertDetailId: number, how: ReadPath) => {
    const query = seatMapQuery(db, concertDetailId).compile()
    if (how === 'index') return query
    const forced = query.sql.replace('from `seats`', 'from `seats` FORCE INDEX (`seats_detail_seat_no`)')
    if (forced === query.sql) throw new Error(`the seat map's SQL changed shape: ${query.sql}`)
    return { ...query, sql: forced }
  }
  const measure = async (concertDetailId: number, how: ReadPath): Promise<QueryStats> => {
    const query = compiled(concertDetailId, how)
    const run = () => db.executeQuery(query)
    await measureLoop(run, plan.concurrency, plan.inProcessMs / 3)
    const cpu = startCpuMeter({ mysqld })
    const loop = await measureLoop(run, plan.concurrency, plan.inProcessMs)
    const mysqlPercent = cpu().mysqld ?? 0
    return { opsPerS: loop.opsPerS, p50Ms: loop.p50Ms, mysqlMsPerOp: (mysqlPercent / 100) * (1000 / loop.opsPerS) }
  }
  try {
    const rounds = halls.map((): QueryPlans['rounds'] => [])
    for (let round = 0; round < plan.rounds; round++) {
      const order: ReadPath[] = round % 2 === 0 ? ['index', 'rowPerSeat'] : ['rowPerSeat', 'index']
      for (const [index, { seats, concertDetailId }] of halls.entries()) {
        const measured = {} as Record<ReadPath, QueryStats>
        for (const how of order) measured[how] = await measure(concertDetailId, how)
        rounds[index]!.push(measured)
        progress(`MySQL, round ${round + 1}, ${seats} seats: mysqld ms per map ${ms(measured.index.mysqlMsPerOp)} through the index, ${ms(measured.rowPerSeat.mysqlMsPerOp)} a row per seat`)
      }
    }
    const results: QueryPlans[] = []
    for (const [index, { concertDetailId }] of halls.entries()) {
      const query = compiled(concertDetailId, 'index')
      const explained = await db.executeQuery<{ key: string | null }>({ ...query, sql: `EXPLAIN ${query.sql}` })
      const measured = rounds[index]!
      results.push({
        chosenIndex: explained.rows[0]?.key ?? null,
        index: median(measured.map((round) => round.index)),
        rowPerSeat: median(measured.map((round) => round.rowPerSeat)),
        rounds: measured,
      })
    }
    return results
  } finally {
    await db.destroy()
  }
}

/**
 * One server per SERIALIZER, both up for the whole run; they take turns per size (the order
 * flips every round), so drift in the machine's other load falls on both alike.
 */
async function measureHttp(config: Config, halls: Halls, plan: Plan, { pinning, progress }: Lab): Promise<OverHttp[]> {
  const servers = {} as Record<Mode, { url: string; headers: Record<string, string> }>
  try {
    for (const mode of ['inline', 'worker'] as const) {
      const starting = performance.now()
      const { url } = await startServer('app', { ...config, SERIALIZER: mode }, { pinning })
      // The halls belong to their own concert, whose queue gives its own tokens.
      servers[mode] = { url, headers: bearer(await activeToken(url, 1, { timeoutMs: 30_000, concertId: HALL_CONCERT_ID })) }
      progress(`HTTP, SERIALIZER=${mode}: server ready in ${formatNumber((performance.now() - starting) / 1000)} s`)
    }
    const body = async (mode: Mode, path: string) => (await send(servers[mode].url, 'GET', path, { headers: servers[mode].headers, parse: false })).body
    const rounds = halls.map((): OverHttp['rounds'] => [])
    for (let round = 0; round < plan.rounds; round++) {
      const order: Mode[] = round % 2 === 0 ? ['inline', 'worker'] : ['worker', 'inline']
      for (const [index, { seats, concertDetailId }] of halls.entries()) {
        const measured = {} as Record<Mode, HttpStats>
        for (const mode of order) {
          const { url, headers } = servers[mode]
          const load = (durationS: number) =>
            runLoad({ url, connections: plan.connections, durationS, steps: [{ next: () => ({ method: 'GET', path: `/concert/seats/${concertDetailId}`, headers }) }] })
          await load(plan.httpS / 4)
          const result = await load(plan.httpS)
          measured[mode] = {
            okPerS: result.ok / result.durationS,
            p50Ms: result.latencyMs.p50,
            p99Ms: result.latencyMs.p99,
            failures: result.non2xx + result.errors + result.timeouts,
          }
        }
        rounds[index]!.push(measured)
        progress(`HTTP, round ${round + 1}, ${seats} seats: worker/inline req/s ${formatNumber(measured.worker.okPerS / measured.inline.okPerS)}`)
      }
    }
    const results: OverHttp[] = []
    for (const [index, { concertDetailId }] of halls.entries()) {
      const path = `/concert/seats/${concertDetailId}`
      const measured = rounds[index]!
      results.push({
        identical: (await body('inline', path)) === (await body('worker', path)),
        inline: median(measured.map((round) => round.inline)),
        worker: median(measured.map((round) => round.worker)),
        rounds: measured,
      })
    }
    return results
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
function crossover(rows: SerializerRow[]): number | undefined {
  let from: number | undefined
  for (const row of [...rows].sort((a, b) => a.seats - b.seats)) {
    if (row.http.worker.okPerS > 0 && row.http.worker.okPerS >= PAYS * row.http.inline.okPerS) from ??= row.seats
    else from = undefined
  }
  return from
}

const ratio = (worker: number, inline: number) => formatNumber(worker / inline)
const ms = (value: number) => (value < 10 ? String(Math.round(value * 100) / 100) : formatNumber(value))
const same = (identical: boolean) => (identical ? 'yes' : 'NO')

function tables(rows: SerializerRow[]): { inProcess: Table; http: Table; query: Table } {
  return {
    query: {
      headers: ['seats', 'index MySQL chose', 'mysqld ms/map', 'mysqld ms/map, a row per seat', 'a row per seat / index', 'queries/s', 'queries/s, a row per seat', 'p50 ms', 'p50 ms, a row per seat'],
      rows: rows.map(({ seats, query }) => [
        seats,
        query.chosenIndex ?? 'none (table scan)',
        ms(query.index.mysqlMsPerOp),
        ms(query.rowPerSeat.mysqlMsPerOp),
        formatNumber(query.rowPerSeat.mysqlMsPerOp / query.index.mysqlMsPerOp),
        query.index.opsPerS,
        query.rowPerSeat.opsPerS,
        ms(query.index.p50Ms),
        ms(query.rowPerSeat.p50Ms),
      ]),
    },
    inProcess: {
      headers: [
        'seats', 'JSON KB', 'stringify p50 ms', 'inline ops/s', 'worker ops/s', 'worker/inline ops/s',
        'inline p99 ms', 'worker p99 ms', 'event loop ms/op inline', 'event loop ms/op worker', 'same bytes',
      ],
      rows: rows.map(({ seats, inProcess }) => [
        seats,
        inProcess.jsonBytes / 1024,
        ms(inProcess.stringify.p50Ms),
        inProcess.inline.opsPerS,
        inProcess.worker.opsPerS,
        ratio(inProcess.worker.opsPerS, inProcess.inline.opsPerS),
        ms(inProcess.inline.p99Ms),
        ms(inProcess.worker.p99Ms),
        ms(inProcess.inline.mainThreadMsPerOp),
        ms(inProcess.worker.mainThreadMsPerOp),
        same(inProcess.identical),
      ]),
    },
    http: {
      headers: ['seats', 'inline req/s', 'worker req/s', 'worker/inline req/s', 'inline p99 ms', 'worker p99 ms', 'worker/inline p99', 'non-2xx + errors', 'same bytes'],
      rows: rows.map(({ seats, http }) => [
        seats,
        http.inline.okPerS,
        http.worker.okPerS,
        ratio(http.worker.okPerS, http.inline.okPerS),
        http.inline.p99Ms,
        http.worker.p99Ms,
        ratio(http.worker.p99Ms, http.inline.p99Ms),
        http.rounds.reduce((sum, round) => sum + round.inline.failures + round.worker.failures, 0),
        same(http.identical),
      ]),
    },
  }
}

// Not pinned: the pool threads need the second core that pinning would give the load generator.
await runLab<SerializerRow>(
  'serializer',
  async (lab) => {
    const { flags, progress } = lab
    const plan: Plan = {
      sizes: flags.sizes ?? [50, 500, 2000, 5000, 20_000],
      rounds: flags.rounds ?? (flags.quick ? 1 : 3),
      inProcessMs: flags.quick ? 300 : 1000,
      httpS: flags.durationS ?? (flags.quick ? 1.5 : 3),
      connections: flags.connections?.[0] ?? 10,
      workers: flags.workers ?? 1,
      concurrency: 4,
    }
    // Measure throughput, not shedding: a 503 would count as a fast answer. No seat-map cache: every request builds its map.
    const config = labConfig('serializer', 10, { WORKERS: plan.workers, SERIALIZER_THREADS: 2, SHED_LOAD: false, CONCERT_CACHE_MS: 0, ...flags.set })
    progress(`fresh lab database with halls of ${plan.sizes.join(', ')} seats`)
    const ids = await resetHalls(config, plan.sizes)
    const halls = plan.sizes.map((seats, index) => ({ seats, concertDetailId: ids[index]! }))
    const inProcess = await measureInProcess(config, halls, plan, lab)
    const http = await measureHttp(config, halls, plan, lab)
    const query = await measureQueries(config, halls, plan, lab)
    const rows = halls.map(({ seats }, index): SerializerRow => ({ seats, inProcess: inProcess[index]!, http: http[index]!, query: query[index]! }))
    const table = tables(rows)
    const found = crossover(rows)

    return {
      title: 'Seat map: inline or worker serialization',
      intro:
        'For each hall size, the seat map (`GET /concert/seats/:id`) built on the event loop (`SERIALIZER=inline`: Kysely query, then the route schema\'s fast-json-stringify) ' +
        'against the piscina pool (`SERIALIZER=worker`: a thread runs the same query and serializer and transfers the JSON bytes back). Ratios are worker/inline in this run: ' +
        `above 1 for ops/s and req/s means the pool is faster; below 1 for p99 means it is faster. Every number is the median of ${plan.rounds} round(s), sizes and modes ` +
        "interleaved; each round's numbers are in `results.json`.",
      sections: [
        {
          heading: '(a) In process: the job alone',
          text:
            `Closed loop, ${plan.concurrency} operations in flight, ${plan.inProcessMs} ms per measurement after a warm-up. "stringify" is fast-json-stringify alone, plus the UTF-8 encoding a socket write does, ` +
            'on rows already in memory; "inline" is query + stringify on the event loop; "worker" is a pool round trip (query + stringify in the thread, bytes transferred). ' +
            '"event loop ms/op" is the main thread\'s busy time per operation: what each path takes from the thread that serves HTTP.',
          table: table.inProcess,
        },
        {
          heading: '(b) Over HTTP: the route under load',
          text:
            `autocannon, ${plan.connections} connections, ${plan.httpS} s per size after a warm-up, against two servers (WORKERS=${plan.workers}, SERIALIZER_THREADS=${config.SERIALIZER_THREADS}), ` +
            'one per SERIALIZER, taking turns. req/s counts 2xx answers only; "non-2xx + errors" sums every round. "same bytes": both servers answered identical bodies.',
          table: table.http,
        },
        {
          heading: '(c) MySQL: the query alone, and how it reads the seats',
          text:
            `Closed loop, ${plan.concurrency} queries in flight, ${plan.inProcessMs} ms per measurement after a warm-up: the map's query as the repository sends it, which MySQL reads from the index on ` +
            '(option, status, seat, hold end) alone, against the same query with `FORCE INDEX (seats_detail_seat_no)`: the seats found by (option, seat) and each row then read by its primary key, ' +
            'as MySQL read a map before that index (0007-seats-detail-map) whenever the option was a small part of the table. "mysqld ms/map" is the CPU mysqld used per query.',
          table: table.query,
        },
        {
          heading: 'How to read this',
          text: [
            '- Offloading cannot make the work cheaper: the thread does the same query and serialization, plus a transfer. It pays only when the event loop is the bottleneck and a core is free for the pool; on a box whose cores are all busy with cluster workers, MySQL and the load generator, it mostly moves work around.',
            '- Small maps lose to the fixed cost of a round trip to a thread (message passing, scheduling); large maps can win because the event loop no longer parses thousands of rows.',
            '- On a machine shared with other work the numbers are noisy: compare ratios within a run, not absolute numbers across runs, and treat ratios within 10% of 1 as a tie.',
          ].join('\n'),
        },
      ],
      config,
      parameters: { ...plan, sizes: plan.sizes.join(' '), connectionsPerThread: CONNECTIONS_PER_THREAD },
      rows,
      notes: [
        found === undefined
          ? `No crossover: at no size did the pool serve ${formatNumber((PAYS - 1) * 100)}% more seat maps per second than the event loop (at every larger size too), so offloading does not pay on this machine; auto should stay inline (a threshold above every real hall).`
          : `Crossover: from **${found} seats** up, the pool served at least ${formatNumber((PAYS - 1) * 100)}% more seat maps per second than the event loop at every size measured; that is the threshold auto should use (SERIALIZER_THRESHOLD_SEATS=${found}).`,
      ],
      charts: [
        {
          name: 'ratio',
          title: 'Worker/inline throughput by hall size',
          spec: lineChart({
            title: 'worker/inline throughput (above 1: the pool is faster)',
            rows: rows.flatMap(({ seats, inProcess, http }) => [
              { seats, measure: 'in process, ops/s', ratio: inProcess.worker.opsPerS / inProcess.inline.opsPerS },
              { seats, measure: 'over HTTP, req/s', ratio: http.worker.okPerS / http.inline.okPerS },
            ]),
            x: { field: 'seats', title: 'seats (log scale)', log: true },
            y: { field: 'ratio', title: 'worker/inline' },
            series: { field: 'measure', title: 'measured' },
          }),
        },
        {
          name: 'event-loop',
          title: 'Event-loop time per seat map, inline and worker',
          spec: lineChart({
            title: 'event-loop busy ms per seat map (in process)',
            rows: rows.flatMap(({ seats, inProcess }) => [
              { seats, mode: 'inline', ms: inProcess.inline.mainThreadMsPerOp },
              { seats, mode: 'worker', ms: inProcess.worker.mainThreadMsPerOp },
            ]),
            x: { field: 'seats', title: 'seats (log scale)', log: true },
            y: { field: 'ms', title: 'ms per seat map' },
            series: { field: 'mode', title: 'SERIALIZER' },
          }),
        },
      ],
      summary: [table.inProcess, table.http, table.query],
    }
  },
  { unpinned: 'the pool threads need every core' },
)
