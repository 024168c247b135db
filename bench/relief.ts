/**
 * `npm run bench:relief`: every lever that relieves the app's CPU, measured against one naive
 * baseline in one run. The report's scenario mix at a fixed overload: first the baseline (one
 * worker, no caches, seat maps built on the event loop, no shedding), then one lever at a time,
 * then all of them; goodput (2xx/s) and p99 of each as a ratio to the baseline. Then what the
 * piscina pool is for: the p99 of a cheap call served beside large seat maps, inline against
 * pooled, with one worker and with one per core. See docs/lab.md for how to read the report.
 */
import { availableParallelism } from 'node:os'
import { bearer } from '../test/helpers/http.js'
import { range } from '../test/helpers/lists.js'
import { activeTokens } from '../test/helpers/queue.js'
import { HALL_CONCERT_ID } from '../test/helpers/halls.js'
import { runLoad, type LoadResult, type RequestStep } from './lib/autocannon.js'
import { barChart, baselineRatioChart } from './lib/charts.js'
import { endpoints, steps } from './lib/endpoints.js'
import { admitAll, randomUser, resetLab, type Fixture, type Hold } from './lib/fixture.js'
import { LAB_IDENTITY, withIdentity } from './lib/identity.js'
import { runLab } from './lib/lab.js'
import { startCpuShare, type CpuShare } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, serverCpuList, startServer, type Settings } from './lib/server.js'

interface ReliefRow extends LoadResult {
  /** `levers`: the scenario mix; `pool`: a cheap call beside large seat maps. */
  part: 'levers' | 'pool'
  case: string
  settings: Settings
  /** 2xx answers per second. */
  okPerS: number
  /** levers: okPerS and p99 over the baseline's; pool: over inline's at the same worker count and hall. */
  goodputRatio: number
  p99Ratio: number
  shed503: number
  cpu: CpuShare
  /** pool: the large seat maps loaded at the same time (the row's own numbers are the cheap call's). */
  hall?: { seats: number; okPerS: number; p99: number; shed503: number }
}

/** The naive server: one worker, no caches, seat maps built on the event loop, no shedding. */
const BASELINE: Settings = { WORKERS: 1, CONCERT_CACHE_MS: 0, SERIALIZER: 'inline', SHED_LOAD: false }

const endpoint = (name: string) => endpoints.find((e) => e.name === name && !e.variant)!

/** Queue tokens are per concert: holds, payments and maps of the hall take its concert's. */
type HallTokens = string[]

/** The step with the hall concert's queue token on calls that book a hall seat. */
function inHall(step: RequestStep, fixture: Fixture, hallTokens: HallTokens): RequestStep {
  return {
    ...step,
    next: (context) => {
      const request = step.next(context)
      const hold = request.json as Partial<Hold> | undefined
      if (hold?.concertDetailId !== fixture.hall.concertDetailId || !hold.userId) return request
      return { ...request, headers: { ...request.headers, ...bearer(hallTokens[hold.userId]!) } }
    },
  }
}

const hallSeatMap = (fixture: Fixture, hallTokens: HallTokens): RequestStep => ({
  next: () => ({ method: 'GET', path: `/concert/seats/${fixture.hall.concertDetailId}`, headers: bearer(hallTokens[randomUser(fixture)]!) }),
})

/**
 * The load-test report's five scenarios, one iteration of each per loop of a connection, so each
 * weighs the same: 1 points (balance, charge), 2 browse and queue (concert, options, join),
 * 3 queue then dates (join, poll, dates), 4 seat map then hold, 5 hold then pay.
 */
function scenarioMix(fixture: Fixture, hallTokens: HallTokens): RequestStep[] {
  const holds: Hold[] = []
  const hold = inHall(endpoint('PATCH /concert/seat').step(fixture, holds), fixture, hallTokens)
  return [
    steps.point(fixture),
    steps.charge(fixture),
    steps.concert(fixture),
    steps.options(fixture),
    steps.join(fixture),
    steps.join(fixture),
    endpoint('GET /concert/wait').step(fixture, holds),
    endpoint('GET /concert/reservation/days/:concertId').step(fixture, holds),
    steps.seatMap(fixture),
    hold,
    hold,
    inHall(endpoint('POST /concert/reservation/days').step(fixture, holds), fixture, hallTokens),
  ].map(withIdentity)
}

const ratio = (value: number, base: number) => (base > 0 ? value / base : 0)

await runLab<ReliefRow>(
  'relief',
  async ({ flags, pinning, progress }) => {
    const quick = flags.quick
    const durationS = flags.durationS ?? (quick ? 2 : 10)
    const warmupS = quick ? 1 : 3
    const connections = flags.connections?.[0] ?? (quick ? 32 : 256)
    const users = flags.users ?? (quick ? 300 : 2000)
    const cores = flags.workers ?? availableParallelism()
    const hallSeats = flags.hallSeats ?? (quick ? 2000 : 20_000)
    const poolHalls = flags.sizes ?? (quick ? [hallSeats] : [2000, hallSeats])
    const poolConnections = quick ? 8 : 16
    const config = labConfig('relief', users, { ...BASELINE, ...LAB_IDENTITY, ...flags.set })
    const cpus = serverCpuList(pinning)
    const rows: ReliefRow[] = []

    // Each case on a fresh store: every one starts with the same free seats, unpaid users and queue.
    async function measure(name: string, settings: Settings, hall: number, load: (server: { url: string }, fixture: Fixture, hallTokens: HallTokens) => Promise<{ main: LoadResult; hall?: LoadResult }>) {
      const fixture = await resetLab(config, hall)
      const server = await startServer('app', { ...config, ...settings } as typeof config, { pinning })
      try {
        await admitAll(server.url, fixture)
        const everyone = range(1, fixture.users)
        const hallTokens: HallTokens = []
        const admitted = await activeTokens(server.url, everyone, { concertId: HALL_CONCERT_ID, timeoutMs: 30_000 })
        everyone.forEach((userId, index) => (hallTokens[userId] = admitted[index]!))
        progress(`${name}: measuring for ${durationS} s`)
        const share = startCpuShare(() => server.workerPids, cpus)
        const result = await load(server, fixture, hallTokens)
        return { ...result, cpu: share() }
      } finally {
        await server.stop()
      }
    }

    const levers: Array<[string, Settings]> = [
      ['baseline', {}],
      [`more workers (${cores})`, { WORKERS: cores }],
      ['cached reads', { CONCERT_CACHE_MS: 1000 }],
      ['piscina pool', { SERIALIZER: 'worker' }],
      ['shedding', { SHED_LOAD: true }],
      ['all levers', { WORKERS: cores, CONCERT_CACHE_MS: 1000, SERIALIZER: 'worker', SHED_LOAD: true }],
    ]
    for (const [name, change] of levers) {
      const settings = { ...BASELINE, ...change }
      const { main, cpu } = await measure(name, settings, hallSeats, async (server, fixture, hallTokens) => {
        const mix = scenarioMix(fixture, hallTokens)
        await runLoad({ url: server.url, connections, durationS: warmupS, steps: mix })
        return { main: await runLoad({ url: server.url, connections, durationS, steps: mix }) }
      })
      const okPerS = main.ok / main.durationS
      const base = rows[0]
      rows.push({
        part: 'levers',
        case: name,
        settings,
        ...main,
        okPerS,
        goodputRatio: base ? ratio(okPerS, base.okPerS) : 1,
        p99Ratio: base ? ratio(main.latencyMs.p99, base.latencyMs.p99) : 1,
        shed503: main.statuses['503'] ?? 0,
        cpu,
      })
      progress(`${name}: ${formatNumber(okPerS)} 2xx/s, p99 ${main.latencyMs.p99} ms, app CPU ${formatNumber(cpu.used)}%, load generator ${formatNumber(cpu.loadGenerator)}%`)
    }

    // What the pool is for: a cheap read answered beside seat maps that are built on every request
    // (no cache: as when holds change the hall all the time), inline against pooled.
    for (const seats of poolHalls) {
      for (const workers of [1, cores]) {
        for (const serializer of ['inline', 'worker'] as const) {
          const name = `${seats}-seat maps, ${workers} worker(s), ${serializer}`
          const settings = { ...BASELINE, WORKERS: workers, SERIALIZER: serializer }
          const { main, hall, cpu } = await measure(name, settings, seats, async (server, fixture, hallTokens) => {
            const concert = [steps.concert(fixture)]
            const maps = [hallSeatMap(fixture, hallTokens)]
            await runLoad({ url: server.url, connections: poolConnections, durationS: warmupS, steps: maps })
            const [main, hall] = await Promise.all([
              runLoad({ url: server.url, connections: poolConnections, durationS, steps: concert }),
              runLoad({ url: server.url, connections: poolConnections, durationS, steps: maps }),
            ])
            return { main, hall }
          })
          const inline = rows.find((row) => row.part === 'pool' && row.hall?.seats === seats && row.settings.WORKERS === workers && row.settings.SERIALIZER === 'inline')
          const okPerS = main.ok / main.durationS
          rows.push({
            part: 'pool',
            case: name,
            settings,
            ...main,
            okPerS,
            goodputRatio: inline ? ratio(okPerS, inline.okPerS) : 1,
            p99Ratio: inline ? ratio(main.latencyMs.p99, inline.latencyMs.p99) : 1,
            shed503: main.statuses['503'] ?? 0,
            cpu,
            hall: { seats, okPerS: hall!.ok / hall!.durationS, p99: hall!.latencyMs.p99, shed503: hall!.statuses['503'] ?? 0 },
          })
          progress(`${name}: GET /concert/1 p99 ${main.latencyMs.p99} ms; seat maps ${formatNumber(hall!.ok / hall!.durationS)} 2xx/s, p99 ${hall!.latencyMs.p99} ms`)
        }
      }
    }

    const leverRows = rows.filter((row) => row.part === 'levers')
    const poolRows = rows.filter((row) => row.part === 'pool')
    const baseline = leverRows[0]!
    const best = leverRows.slice(1).reduce((top, row) => (row.goodputRatio > top.goodputRatio ? row : top))
    const single = leverRows.slice(1, -1)
    const bestSingle = single.reduce((top, row) => (row.goodputRatio > top.goodputRatio ? row : top))
    const all = leverRows.at(-1)!
    const finding =
      `All levers together served ${formatNumber(all.goodputRatio)}x the baseline's goodput at ${formatNumber(all.p99Ratio)}x its p99; ` +
      `alone, ${bestSingle.case} relieved most (${formatNumber(bestSingle.goodputRatio)}x goodput)` +
      `${best === all ? '' : `, more than all levers together`}.`

    // The pool pays where a cheap call beside large maps answers faster and the maps lose less than 10%.
    const pays = poolRows
      .filter((row) => row.settings.SERIALIZER === 'worker')
      .map((row) => {
        const inline = poolRows.find((other) => other.hall!.seats === row.hall!.seats && other.settings.WORKERS === row.settings.WORKERS && other.settings.SERIALIZER === 'inline')!
        return { row, inline, mapsRatio: ratio(row.hall!.okPerS, inline.hall!.okPerS), pays: row.p99Ratio < 1 && row.hall!.okPerS >= 0.9 * inline.hall!.okPerS }
      })
    const poolNotes = pays.map(
      ({ row, mapsRatio, pays }) =>
        `${row.hall!.seats} seats, ${row.settings.WORKERS} worker(s): pooled GET /concert/1 p99 ${formatNumber(row.p99Ratio)}x inline's, ` +
        `seat maps ${formatNumber(mapsRatio)}x inline's 2xx/s: the pool ${pays ? 'pays' : 'does not pay'}.`,
    )
    const paysAtCores = pays.filter((entry) => entry.pays && entry.row.settings.WORKERS === cores).map((entry) => entry.row.hall!.seats)

    const leverTable: Table = {
      headers: ['lever', 'settings', '2xx/s', 'goodput ÷ baseline', 'p99 ms', 'p99 ÷ baseline', '503s', 'non-2xx', 'errors', 'app CPU%', 'CPUs busy %', 'load gen CPU%'],
      rows: leverRows.map((row) => [
        row.case,
        Object.entries(row.settings).map(([key, value]) => `${key}=${value}`).join(' '),
        row.okPerS,
        row.goodputRatio,
        row.latencyMs.p99,
        row.p99Ratio,
        row.shed503,
        row.non2xx,
        row.errors,
        row.cpu.used,
        row.cpu.busy,
        row.cpu.loadGenerator,
      ]),
    }
    const poolTable: Table = {
      headers: ['hall seats', 'workers', 'SERIALIZER', 'GET /concert/1 2xx/s', 'GET /concert/1 p99 ms', 'p99 ÷ inline', 'seat maps 2xx/s', 'seat maps p99 ms', 'seat-map 503s', 'app CPU%', 'load gen CPU%'],
      rows: poolRows.map((row) => [
        row.hall!.seats,
        Number(row.settings.WORKERS),
        String(row.settings.SERIALIZER),
        row.okPerS,
        row.latencyMs.p99,
        row.p99Ratio,
        row.hall!.okPerS,
        row.hall!.p99,
        row.hall!.shed503,
        row.cpu.used,
        row.cpu.loadGenerator,
      ]),
    }

    const loadGeneratorPeak = Math.max(...leverRows.map((row) => row.cpu.loadGenerator))
    const notes = [
      finding,
      `The load generator (autocannon, this process) shared the servers' ${cpus.length} CPUs and used up to ${formatNumber(loadGeneratorPeak)}% CPU: ` +
        `on a ${cpus.length}-core machine that is ${formatNumber(loadGeneratorPeak / cpus.length)}% of all CPU taken from the app's workers, so the "more workers" ` +
        'and "all levers" ratios are lower than on a machine where the load comes from elsewhere.',
      ...poolNotes,
      paysAtCores.length
        ? `With one worker per core the pool paid from ${Math.min(...paysAtCores)} seats: SERIALIZER_THRESHOLD_SEATS (auto's crossover) can be set there.`
        : `With one worker per core the pool paid at none of the measured sizes (${poolHalls.join(', ')} seats): auto should stay effectively off (SERIALIZER_THRESHOLD_SEATS above the largest hall).`,
      'CONCERT_CACHE_MS=0 turns off both caches: the concert and options reads and the versioned seat-map and bookable-days cache (src/concerts/versioned-cache.ts treats a maximum age of 0 as no cache).',
      ...(quick ? [] : ['The machine is shared: other work on it during the run shows up as noise.']),
    ]

    return {
      title: 'seatrush relief: every lever against a naive baseline',
      intro:
        `**${finding}**\n\n![goodput and p99 of each lever over the baseline](relief.svg)\n\n` +
        `The report's five scenarios, one iteration of each per loop (GET /point/:userId, PATCH /point; GET /concert/1, GET /concerts/1, POST /concert/wait; ` +
        `POST /concert/wait, GET /concert/wait, GET /concert/reservation/days/1; a 50-seat map, PATCH /concert/seat; PATCH /concert/seat, ` +
        `POST /concert/reservation/days), from ${connections} autocannon connections for ${durationS} s: an overload for one worker. ` +
        `Baseline: ${Object.entries(BASELINE).map(([key, value]) => `${key}=${value}`).join(', ')}; then one lever at a time, then all. Each case starts on a fresh store ` +
        `(${users} users, a ${hallSeats}-seat hall for the holds). Goodput is 2xx/s; ratios are to the baseline of this run. ` +
        `The pool section loads GET /concert/1 and the hall's seat map (${poolHalls.join(' and ')} seats, no cache) with ${poolConnections} connections each, at the same time.`,
    sections: [
        { heading: 'Levers', table: leverTable },
        { heading: 'What the pool is for: a cheap call beside large seat maps', text: poolNotes.join(' '), table: poolTable },
      ],
      config,
      parameters: { connections, durationS, warmupS, users, hallSeats, poolHalls: poolHalls.join(' '), poolConnections, cores, baselineGoodput: Math.round(baseline.okPerS) },
      rows,
      notes,
      charts: [
        {
          name: 'relief',
          title: 'Goodput and p99 of each lever over the baseline',
          spec: baselineRatioChart({
            title: 'Each lever over the naive baseline (1 = no change)',
            category: 'lever',
            throughput: 'goodput (2xx/s)',
            rows: leverRows.map((row) => ({ case: row.case, throughputRatio: row.goodputRatio, p99Ratio: row.p99Ratio })),
          }),
        },
        {
          name: 'pool',
          title: 'GET /concert/1 p99 beside large seat maps, inline and pooled',
          spec: barChart({
            title: 'GET /concert/1 p99 (ms) beside large seat maps',
            rows: poolRows.map((row) => ({ size: `${row.hall!.seats} seats, ${row.settings.WORKERS} worker(s)`, serializer: String(row.settings.SERIALIZER), p99: row.latencyMs.p99 })),
            category: { field: 'size' },
            value: { field: 'p99', title: 'p99 ms' },
            series: { field: 'serializer', title: 'SERIALIZER' },
          }),
        },
      ],
      summary: [leverTable, poolTable],
    }
  },
  { unpinned: 'the workers lever gives the app every core, so the load generator shares them (its CPU is in the tables)' },
)
