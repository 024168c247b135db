/**
 * `npm run bench`: every endpoint under autocannon, on the app and on its two references in the
 * same run (the thin reference doing the same SQL and Lua in bare handlers, and a hello-world),
 * with per-worker memory. See docs/lab.md for how to read the report.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { storeBeside } from '../test/helpers/store.js'
import { runLoad, type LoadResult, type RequestStep } from './lib/autocannon.js'
import { barChart } from './lib/charts.js'
import { findEndpoints, endpointTitle, steps } from './lib/endpoints.js'
import { admitAll, resetLab, type Fixture, type Hold } from './lib/fixture.js'
import { runLab } from './lib/lab.js'
import { startCpuShare, startMemoryWatch, type CpuShare } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, serverCpuList, startServer, stopAll, type RunningServer, type ServerKind } from './lib/server.js'

const RSS_TARGET_MB = 150

interface BenchRow extends LoadResult {
  server: ServerKind
  endpoint: string
  /** Non-2xx statuses that are the right answer under this load (a seat already taken). */
  expected: number[]
  rssMaxMb: number
  heapMaxMb: number
  /** CPU% the server's workers used, and how busy their CPUs were altogether (100 = one core). */
  cpu: CpuShare
}

const statusList = (statuses: Record<string, number>) =>
  Object.entries(statuses)
    .map(([status, count]) => `${status}: ${count}`)
    .join(', ')

await runLab<BenchRow>('bench', async ({ flags, pinning, progress }) => {
  const quick = flags.quick
  const durationS = flags.durationS ?? (quick ? 2 : 10)
  const warmupS = quick ? 1 : 3
  const connections = flags.connections?.[0] ?? 32
  const users = flags.users ?? 1000
  const hallSeats = flags.hallSeats ?? (quick ? 1000 : 5000)
  const workers = flags.workers ?? pinning.serverCpuCount
  const selected = findEndpoints(flags.endpoints)
  // No shedding: the numbers are what each server can do, not how early it gives up.
  const config = labConfig('run', users, { WORKERS: workers, SEATS_PER_DETAIL: flags.seats ?? 50, SHED_LOAD: false, ...flags.set })
  // The thin reference gets a database of its own, so both start from the same seats and balances.
  const configs = { app: config, thin: { ...config, ...storeBeside(config, 'thin') } }
  const probeDir = mkdtempSync(join(tmpdir(), 'seatrush-bench-'))
  const rows: BenchRow[] = []

  const measure = async (server: RunningServer, title: string, expected: number[], step: RequestStep, requestCount?: number) => {
    const peak = startMemoryWatch(() => server.workerPids, join(probeDir, server.kind))
    const share = startCpuShare(() => server.workerPids, serverCpuList(pinning))
    const result = await runLoad({ url: server.url, connections, durationS, steps: [step], requestCount, sloMs: flags.sloMs })
    const cpu = share()
    const memory = peak()
    rows.push({ server: server.kind, endpoint: title, expected, ...result, rssMaxMb: memory.rssMb, heapMaxMb: memory.heapUsedMb, cpu })
    progress(`${server.kind.padEnd(5)} ${title}: ${formatNumber(result.rps)} req/s, p99 ${result.latencyMs.p99} ms, ${statusList(result.statuses)}`)
  }

  // All three servers stay up and each endpoint is loaded on the app and then on the thin
  // reference right after, so noise from the rest of the machine hits both alike.
  const lanes: Array<{ server: RunningServer; fixture: Fixture; holds: Hold[] }> = []
  try {
    for (const kind of ['app', 'thin'] as const) {
      progress(`${kind}: fresh lab database (${users} users, ${hallSeats}-seat hall)`)
      const fixture = await resetLab(configs[kind], hallSeats)
      const server = await startServer(kind, configs[kind], { pinning, probeDir: join(probeDir, kind) })
      progress(`${kind}: ${server.workerPids.length} worker(s) (pids ${server.workerPids.join(', ')}) on ${server.url}; admitting ${users} users`)
      await admitAll(server.url, fixture)
      lanes.push({ server, fixture, holds: [] })
    }
    const hello = await startServer('hello', config, { pinning, probeDir: join(probeDir, 'hello') })
    const helloStep: RequestStep = { next: () => ({ method: 'GET', path: '/' }) }

    progress(`warming up for ${warmupS} s each`)
    for (const { server, fixture } of lanes) {
      await runLoad({ url: server.url, connections, durationS: warmupS, steps: [steps.concert, steps.options, steps.point, steps.seatMap, steps.join].map((step) => step(fixture)) })
    }
    await runLoad({ url: hello.url, connections, durationS: warmupS, steps: [helloStep] })

    for (const [index, endpoint] of selected.entries()) {
      for (const { server, fixture, holds } of lanes) {
        await measure(server, endpointTitle(endpoint), endpoint.expected, endpoint.step(fixture, holds), endpoint.requestCount?.(fixture, holds))
        // Paying gave up the payers' slots; later endpoints need them active again.
        if (endpoint.releasesSlots && index < selected.length - 1) await admitAll(server.url, fixture)
      }
    }
    await measure(hello, 'GET /', [], helloStep)
  } finally {
    await stopAll()
    rmSync(probeDir, { recursive: true, force: true })
  }
  const find = (server: ServerKind, endpoint: string) => rows.find((row) => row.server === server && row.endpoint === endpoint)
  const helloRow = find('hello', 'GET /')
  const helloRps = helloRow?.rps ?? Number.NaN
  // Answers per second of the server's own CPU: where the load generator set the pace, the
  // servers idled for part of the run, and req/s alone understates the faster side.
  const perCpu = (row: BenchRow) => row.rps / Math.max(row.cpu.used, 1)
  const helloPerCpu = helloRow ? perCpu(helloRow) : Number.NaN
  const hot = new Set(selected.filter((endpoint) => endpoint.hot).map(endpointTitle))
  const appRows = rows.filter((row) => row.server === 'app')

  const nonOk = (row: BenchRow) => (row.non2xx ? `${row.non2xx} (${statusList(Object.fromEntries(Object.entries(row.statuses).filter(([status]) => !status.startsWith('2'))))})` : '0')
  const mainTable: Table = {
    headers: ['endpoint', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'thin req/s', 'app ÷ thin', 'app ÷ hello', 'app ÷ hello per CPU', 'RSS max MB'],
    rows: appRows.map((row) => {
      const thin = find('thin', row.endpoint)
      return [
        row.endpoint,
        row.rps,
        row.latencyMs.p50,
        row.latencyMs.p99,
        nonOk(row),
        thin?.rps ?? Number.NaN,
        thin ? Math.round((row.rps / thin.rps) * 100) / 100 : Number.NaN,
        hot.has(row.endpoint) ? Math.round((row.rps / helloRps) * 100) / 100 : '',
        hot.has(row.endpoint) ? Math.round((perCpu(row) / helloPerCpu) * 100) / 100 : '',
        row.rssMaxMb,
      ]
    }),
  }
  const allTable: Table = {
    headers: ['server', 'endpoint', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'statuses', 'errors', 'server CPU%', 'CPUs busy %', 'load gen CPU%', 'RSS max MB', 'heap max MB'],
    rows: rows.map((row) => [
      row.server,
      row.endpoint,
      row.responses,
      row.rps,
      row.latencyMs.p50,
      row.latencyMs.p99,
      statusList(row.statuses),
      row.errors,
      row.cpu.used,
      row.cpu.busy,
      row.cpu.loadGenerator,
      row.rssMaxMb,
      row.heapMaxMb,
    ]),
  }
  const memoryTable: Table = {
    headers: ['server', 'workers', 'RSS max per worker MB', 'heap max per worker MB', `within ${RSS_TARGET_MB} MB`],
    rows: (['app', 'thin', 'hello'] as const).map((server) => {
      const mine = rows.filter((row) => row.server === server)
      const rss = Math.max(...mine.map((row) => row.rssMaxMb))
      return [server, workers, rss, Math.max(...mine.map((row) => row.heapMaxMb)), rss <= RSS_TARGET_MB ? 'yes' : 'NO']
    }),
  }

  const notes: string[] = []
  for (const row of rows) {
    const unexpected = Object.entries(row.statuses).filter(([status]) => !status.startsWith('2') && !row.expected.includes(Number(status)))
    if (unexpected.length || row.errors) {
      notes.push(`${row.server} ${row.endpoint}: unexpected answers ${statusList(Object.fromEntries(unexpected)) || 'none'}, ${row.errors} connection errors/timeouts`)
    }
  }
  const crowded = rows.filter((row) => row.cpu.busy - row.cpu.used > 20)
  if (crowded.length) {
    notes.push(
      `Other processes (MySQL, Redis${pinning.applied ? '' : ', the load generator'}, anything else on the machine) kept the servers' CPUs busy during ${crowded.length} of ${rows.length} loads ` +
        '(`CPUs busy %` well above `server CPU%` under All measurements): those servers got less CPU than they could have used.',
    )
  }
  const generatorBound = rows.filter((row) => row.cpu.loadGenerator > 90)
  if (generatorBound.length) {
    notes.push(
      `The load generator used over 90% of its CPU during ${generatorBound.map((row) => `${row.server} ${row.endpoint}`).join('; ')}: ` +
        'there it, not the server, may have set the pace (the ratios of those rows understate the faster side).',
    )
  }
  for (const { server, fixture } of lanes) {
    if (fixture.freeSeats.length === 0) notes.push(`${server.kind}: all ${hallSeats} hall seats were held before PATCH /concert/seat ended; later holds met taken seats (409). Raise --hall for all-winning holds.`)
  }
  const appRss = Math.max(...appRows.map((row) => row.rssMaxMb))
  notes.push(`Per-worker RSS of the app peaked at ${formatNumber(appRss)} MB (target <= ${RSS_TARGET_MB} MB: ${appRss <= RSS_TARGET_MB ? 'met' : 'MISSED'}).`)
  if (!quick) notes.push('The machine is shared: other work on it during the run shows up as noise; compare ratios within one run rather than absolute numbers across runs.')

  const throughputRows = [
    ...rows.filter((row) => row.server !== 'hello').map((row) => ({ endpoint: row.endpoint, server: row.server, rps: Math.round(row.rps) })),
    ...rows.filter((row) => row.server === 'hello').map((row) => ({ endpoint: 'hello-world GET /', server: 'hello', rps: Math.round(row.rps) })),
  ]
  const ratioRows = appRows.flatMap((row) => {
    const thin = find('thin', row.endpoint)
    return [
      ...(thin ? [{ endpoint: row.endpoint, versus: 'app ÷ thin', ratio: row.rps / thin.rps }] : []),
      ...(hot.has(row.endpoint) ? [{ endpoint: row.endpoint, versus: 'app ÷ hello-world', ratio: row.rps / helloRps }] : []),
    ]
  })

  return {
    title: 'seatrush bench: every endpoint beside its references',
    intro:
      `Each endpoint was loaded by autocannon with ${connections} connections for ${durationS} s (payments: exactly one per hold won, each by its own user) ` +
      `with random real ids and real queue tokens, first on the app, then on the thin reference (bare Fastify handlers doing the same SQL through mysql2 ` +
      `and the same Lua through ioredis) right after; a bare Fastify hello-world gives the ceiling. Each server ran ${workers} worker(s), app and thin on fresh databases of their own.`,
    sections: [
      { heading: 'Endpoints', text: '`app ÷ thin` is the share of the thin reference\'s throughput the app reaches (1 = no overhead); `app ÷ hello` is given for the hot cached reads, and `per CPU` the same ratio of answers per second of server CPU (fairer where the load generator, not the server, set the pace: see the notes).', table: mainTable },
      { heading: 'Memory', text: 'Peak resident memory of any one worker while its server was loaded (sampled every 500 ms from /proc) and peak V8 heap in use.', table: memoryTable },
      { heading: 'All measurements', table: allTable },
    ],
    config,
    parameters: { connections, durationS, warmupS, users, hallSeats, workers, sloMs: flags.sloMs ?? 1000, endpoints: selected.length },
    rows,
    notes,
    charts: [
      {
        name: 'throughput',
        title: 'Requests per second by endpoint: app, thin reference, hello-world',
        spec: barChart({ title: 'req/s by endpoint', rows: throughputRows, category: { field: 'endpoint' }, value: { field: 'rps', title: 'req/s' }, series: { field: 'server', title: 'server' } }),
      },
      {
        name: 'ratio',
        title: 'App throughput as a share of its references',
        spec: barChart({ title: 'app req/s ÷ reference req/s', rows: ratioRows, category: { field: 'endpoint' }, value: { field: 'ratio', title: 'ratio (1 = as fast)' }, series: { field: 'versus', title: 'compared with' } }),
      },
    ],
    summary: [mainTable, memoryTable],
  }
})
