/**
 * `npm run bench:ramp`: rising concurrency stages, as k6 stages ramp virtual users, once with
 * load shedding off and once on; at each stage throughput, goodput (2xx within the SLO), p99,
 * 503s, errors, worker memory and worker deaths. See docs/lab.md for how to read the report.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runLoad, type LoadResult, type RequestStep } from './lib/autocannon.js'
import { runPatientLoad } from './lib/patient-load.js'
import { lineChart } from './lib/charts.js'
import { steps } from './lib/endpoints.js'
import { admitAll, resetLab, type Fixture } from './lib/fixture.js'
import { runLab } from './lib/lab.js'
import { DATABASE_NAMES, findService, startCpuMeter, startCpuShare, startMemoryWatch, type CpuShare } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, serverCpuList, startServer } from './lib/server.js'

interface RampRow extends LoadResult {
  case: string
  shed: boolean
  /** 503 answers: load shed by the server (or a dependency it could not reach). */
  shed503: number
  /** Of the requests the server shed, those refused after waiting for a MySQL connection (its own count). */
  shedAfterWait: number
  heapMaxMb: number
  rssMaxMb: number
  /** Workers the primary reported dead during this stage (and replaced). */
  workersDied: number
  /** CPU% the app's workers used, and how busy their CPUs were altogether (100 = one core). */
  cpu: CpuShare
  /** CPU% MySQL used (100 = one core), on whichever CPUs it ran: not pinned, it shares them all. */
  mysqlCpu: number
}

/**
 * Where a series stops gaining: the stage of its highest goodput. Answers that stage and, for 8
 * and 16 times its connections where the stages reach them, the goodput kept as a share of the peak.
 */
function kneeOf(series: Array<Pick<RampRow, 'connections' | 'goodput'>>): { knee: number; peak: number; past: Array<{ times: number; connections: number; goodput: number; share: number }> } {
  const top = series.reduce((best, row) => (row.goodput > best.goodput ? row : best), series[0]!)
  const past = [8, 16].flatMap((times) => {
    const row = series.find((stage) => stage.connections === top.connections * times)
    return row ? [{ times, connections: row.connections, goodput: row.goodput, share: top.goodput > 0 ? row.goodput / top.goodput : 0 }] : []
  })
  return { knee: top.connections, peak: top.goodput, past }
}

const AFTER_WAIT = /^seatrush_pressure_rejections_after_wait_total (\d+)$/m

/**
 * The server's count of requests refused after waiting for a MySQL connection. Asked again for up
 * to 10 s: right after a stage the worker may still shed GET /metrics with the rest.
 */
async function refusedAfterWait(url: string): Promise<number> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const res = await fetch(`${url}/metrics`).catch(() => undefined)
    const text = res ? await res.text() : ''
    const found = res?.ok ? AFTER_WAIT.exec(text) : null
    if (found) return Number(found[1])
    if (Date.now() > deadline) throw new Error(`GET ${url}/metrics gave no seatrush_pressure_rejections_after_wait_total within 10 s`)
    await delay(100)
  }
}

interface Case {
  name: string
  /** Its charts' file names start with this. */
  slug: string
  what: string
  steps: (fixture: Fixture) => RequestStep[]
  /** Server settings of this case, over the lab's. */
  settings?: Record<string, unknown>
  /** Clients that wait the Retry-After of a 503 (runPatientLoad) instead of autocannon's. */
  patient?: boolean
  /** Run only when named with --case. */
  optIn?: boolean
}

const largeHall: Case = {
  name: 'large hall',
  slug: 'hall',
  what: 'the seat map of the large hall (one option with thousands of seats), built on every request as when holds keep changing it (CONCERT_CACHE_MS=0): CPU-heavy per request',
  steps: (fixture) => [steps.hallSeatMap(fixture)],
  // Cached, the map is a buffer the load generator cannot parse as fast as the server sends it.
  settings: { CONCERT_CACHE_MS: 0 },
}

const allCases: Case[] = [
  {
    name: 'browse and queue',
    slug: 'browse',
    what: "the report's scenario 2: GET /concert/1, GET /concerts/1, POST /concert/wait",
    steps: (fixture) => [steps.concert(fixture), steps.options(fixture), steps.join(fixture)],
  },
  largeHall,
  {
    ...largeHall,
    name: 'large hall, Retry-After honoured',
    slug: 'hall-patient',
    what: `${largeHall.what}, from clients that wait the Retry-After a 503 gives before they ask again, as the waiting room's pages and the rush's clients do (autocannon's resend at once); opt-in`,
    patient: true,
    optIn: true,
  },
]

const shedLabel = (shed: boolean) => (shed ? 'shedding on' : 'shedding off')

await runLab<RampRow>('ramp', async ({ flags, pinning, progress }) => {
  const quick = flags.quick
  const stages = flags.connections ?? (quick ? [8, 64, 512] : [4, 16, 64, 128, 256, 512, 1024])
  const stageS = flags.durationS ?? (quick ? 2 : 10)
  const warmupS = quick ? 1 : 3
  const sloMs = flags.sloMs ?? 1000
  const users = flags.users ?? (quick ? 200 : 1000)
  const hallSeats = flags.hallSeats ?? 5000
  const workers = flags.workers ?? pinning.serverCpuCount
  const config = labConfig('ramp', users, { WORKERS: workers, ...flags.set })
  const unknown = flags.cases.filter((name) => !allCases.some((c) => c.name === name))
  if (unknown.length) throw new Error(`no such case: ${unknown.join(', ')} (cases: ${allCases.map((c) => c.name).join(', ')})`)
  const cases = flags.cases.length ? allCases.filter((c) => flags.cases.includes(c.name)) : allCases.filter((c) => !c.optIn)
  progress(`fresh lab database (${users} users, ${hallSeats}-seat hall)`)
  const fixture = await resetLab(config, hallSeats)
  const mysqlPids = findService(Number(new URL(config.MYSQL_URL).port || 3306), DATABASE_NAMES).map((found) => found.pid)
  const probeDir = mkdtempSync(join(tmpdir(), 'seatrush-ramp-'))
  const rows: RampRow[] = []

  try {
    for (const rampCase of cases) {
      const workload = rampCase.steps(fixture)
      const load = rampCase.patient ? runPatientLoad : runLoad
      for (const shed of [false, true]) {
        const label = `${rampCase.name}, ${shedLabel(shed)}`
        progress(`${label}: starting ${workers} worker(s)`)
        const server = await startServer('app', { ...config, ...rampCase.settings, SHED_LOAD: shed }, { pinning, probeDir: join(probeDir, `${rampCase.name}-${shed}`) })
        try {
          await admitAll(server.url, fixture)
          progress(`${label}: warming up for ${warmupS} s`)
          await load({ url: server.url, connections: stages[0]!, durationS: warmupS, steps: workload })
          for (const connections of stages) {
            const deathsBefore = server.deaths()
            const afterWaitBefore = await refusedAfterWait(server.url)
            const memory = startMemoryWatch(() => server.workerPids, join(probeDir, `${rampCase.name}-${shed}`))
            const share = startCpuShare(() => server.workerPids, serverCpuList(pinning))
            const mysqlShare = startCpuMeter({ mysql: mysqlPids })
            const result = await load({ url: server.url, connections, durationS: stageS, steps: workload, sloMs })
            const cpu = share()
            const mysqlCpu = mysqlShare().mysql ?? 0
            const peak = memory()
            const workersDied = server.deaths() - deathsBefore
            if (workersDied) server.findWorkers()
            // A worker that died took its count with it: never below zero.
            const shedAfterWait = Math.max(0, (await refusedAfterWait(server.url)) - afterWaitBefore)
            const row: RampRow = { case: rampCase.name, shed, ...result, shed503: result.statuses['503'] ?? 0, shedAfterWait, heapMaxMb: peak.heapUsedMb, rssMaxMb: peak.rssMb, workersDied, cpu, mysqlCpu }
            rows.push(row)
            progress(
              `${label}, ${connections} connections: ${formatNumber(row.rps)} req/s, goodput ${formatNumber(row.goodput)}/s, ` +
                `p99 ${row.latencyMs.p99} ms, 503s ${row.shed503}, errors ${row.errors}${workersDied ? `, ${workersDied} WORKER(S) DIED` : ''}`,
            )
          }
        } finally {
          await server.stop()
        }
      }
    }
  } finally {
    rmSync(probeDir, { recursive: true, force: true })
  }

  const table: Table = {
    headers: ['case', 'shedding', 'connections', 'req/s', `goodput/s (2xx <= ${sloMs} ms)`, 'p99 ms', '503s', '503s after a MySQL wait', 'errors', 'app CPU%', 'CPUs busy %', 'MySQL CPU%', 'load gen CPU%', 'heap max MB', 'RSS max MB', 'workers died'],
    rows: rows.map((row) => [
      row.case,
      row.shed ? 'on' : 'off',
      row.connections,
      row.rps,
      row.goodput,
      row.latencyMs.p99,
      row.shed503,
      row.shedAfterWait,
      row.errors,
      row.cpu.used,
      row.cpu.busy,
      row.mysqlCpu,
      row.cpu.loadGenerator,
      row.heapMaxMb,
      row.rssMaxMb,
      row.workersDied,
    ]),
  }

  const notes: string[] = []
  for (const rampCase of cases) {
    for (const shed of [false, true]) {
      const mine = rows.filter((row) => row.case === rampCase.name && row.shed === shed)
      const { knee, peak, past } = kneeOf(mine)
      const last = mine.at(-1)!
      const died = mine.reduce((sum, row) => sum + row.workersDied, 0)
      const kept = past.map(({ times, connections, goodput, share }) => `at ${times} times the knee (${connections}) ${formatNumber(goodput)}/s, ${formatNumber(share * 100)}% of the peak`)
      notes.push(
        `${rampCase.name}, ${shedLabel(shed)}: goodput peaked at ${formatNumber(peak)}/s with ${knee} connections (the knee)` +
          `${kept.length ? `; ${kept.join('; ')}` : ''}; at ${last.connections} connections ${formatNumber(last.rps)} req/s answered, goodput ${formatNumber(last.goodput)}/s, p99 ${last.latencyMs.p99} ms` +
          `${died ? `; ${died} worker(s) died and were replaced` : '; no worker died'}.`,
      )
    }
  }
  const crowded = rows.filter((row) => row.cpu.busy - row.cpu.used > 20)
  if (crowded.length) {
    notes.push(
      `Other processes (MySQL, Redis${pinning.applied ? '' : ', the load generator'}, anything else on the machine) kept the app's CPUs busy during ${crowded.length} of ${rows.length} stages ` +
        '(`CPUs busy %` well above `app CPU%`): the app got less CPU than it could have used.',
    )
  }
  if (!quick) notes.push('The machine is shared: other work on it during the run shows up as noise.')

  const charts = cases.flatMap((rampCase) => {
    const mine = rows.filter((row) => row.case === rampCase.name)
    const { slug } = rampCase
    return [
      {
        name: `${slug}-throughput`,
        title: `${rampCase.name}: throughput and goodput vs concurrency`,
        spec: lineChart({
          title: `${rampCase.name}: req/s and goodput/s vs connections`,
          rows: mine.flatMap((row) => [
            { connections: row.connections, shedding: shedLabel(row.shed), measure: 'throughput (all answers)', value: Math.round(row.rps) },
            { connections: row.connections, shedding: shedLabel(row.shed), measure: `goodput (2xx within ${sloMs} ms)`, value: Math.round(row.goodput) },
          ]),
          x: { field: 'connections', title: 'connections (log scale)', log: true },
          y: { field: 'value', title: 'per second' },
          series: { field: 'shedding', title: 'SHED_LOAD' },
          dash: { field: 'measure', title: 'measure' },
        }),
      },
      {
        name: `${slug}-p99`,
        title: `${rampCase.name}: p99 latency vs concurrency`,
        spec: lineChart({
          title: `${rampCase.name}: p99 latency (ms) vs connections`,
          rows: mine.map((row) => ({ connections: row.connections, shedding: shedLabel(row.shed), p99: row.latencyMs.p99 })),
          x: { field: 'connections', title: 'connections (log scale)', log: true },
          y: { field: 'p99', title: 'p99 ms' },
          series: { field: 'shedding', title: 'SHED_LOAD' },
        }),
      },
    ]
  })

  return {
    title: 'seatrush ramp: rising load with and without shedding',
    intro:
      `Stages of ${stages.join(', ')} connections (autocannon's, or the patient clients' of a case that says so), ${stageS} s each with no pause, against ${workers} app worker(s): first with ` +
      `SHED_LOAD=false, then on a fresh server with SHED_LOAD=true. Cases: ${cases.map((c) => `**${c.name}**, ${c.what}`).join('; ')} ` +
      `(${hallSeats} seats). Goodput counts 2xx answers within ${sloMs} ms per second; errors are requests with no answer within 10 s.`,
    sections: [{ heading: 'Stages', table }],
    config,
    parameters: { stages: stages.join(' '), stageS, warmupS, sloMs, users, hallSeats, workers },
    rows,
    notes,
    charts,
    summary: [table],
  }
})
