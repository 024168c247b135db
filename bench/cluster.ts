/**
 * `npm run bench:cluster`: the same mixed workload against 1 .. 2 x cores workers; at each size
 * throughput, p99, the CPU each component burned (app workers, MySQL, Redis, the load
 * generator; read from /proc/<pid>/stat) and that CPU per request; then the Universal
 * Scalability Law fitted over the sizes, its throughput for larger machines and the store whose
 * one core runs out first. See docs/lab.md for how to read the report.
 */
import { cpus } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { runLoad, type LoadResult } from './lib/autocannon.js'
import { lineChart } from './lib/charts.js'
import { steps } from './lib/endpoints.js'
import { admitAll, resetLab } from './lib/fixture.js'
import { LAB_IDENTITY, withIdentity } from './lib/identity.js'
import { runLab } from './lib/lab.js'
import { DATABASE_NAMES, REDIS_NAMES, findService, startCpuBusyMeter, startCpuMeter, startMemoryWatch } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, serverCpuList, startServer } from './lib/server.js'
import { fitUsl, uslPeak, uslThroughput, type UslModel } from './lib/usl.js'

interface ClusterRow extends LoadResult {
  workers: number
  /** CPU% over the measured run, 100 = one core busy. */
  cpu: { app: number; mysql: number; redis: number; loadGenerator: number }
  /** MySQL's and Redis's CPU% just before, with no load from the lab: their other clients' share. */
  idleCpu: { mysql: number; redis: number }
  /** How busy the servers' CPUs were over the run, whoever kept them busy (100 = one core). */
  serverCpusBusy: number
  rssMaxMb: number
  /** 2xx answers per second. */
  okPerS: number
  /** CPU milliseconds each component spent per 2xx answer. */
  cpuMsPerRequest: { app: number; mysql: number; redis: number; loadGenerator: number }
}

/** The sizes the model predicts for: the machines a user may have. */
const PREDICTED_CORES = [4, 8, 16, 64]

/** CPU ms per request from CPU% (100 = one core) and requests per second. */
const msPerRequest = (percent: number, perS: number) => (perS > 0 ? (percent * 10) / perS : 0)

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const portOf = (url: string, fallback: number) => Number(new URL(url).port || fallback)

await runLab<ClusterRow>('cluster', async ({ flags, pinning, progress }) => {
  const quick = flags.quick
  const durationS = flags.durationS ?? (quick ? 3 : 15)
  const warmupS = quick ? 1 : 3
  const idleS = quick ? 1 : 3
  const connections = flags.connections?.[0] ?? 64
  const users = flags.users ?? 1000
  const cores = cpus().length
  const largest = flags.workers ?? 2 * cores
  const sizes = Array.from({ length: largest }, (_, i) => i + 1)
  const serverCpus = serverCpuList(pinning)
  // No shedding: each size is measured at what it can do.
  const config = labConfig('cluster', users, { SHED_LOAD: false, ...LAB_IDENTITY, ...flags.set })

  const database = findService(portOf(config.MYSQL_URL, 3306), DATABASE_NAMES)
  const redis = findService(portOf(config.REDIS_URL, 6379), REDIS_NAMES)
  const found = [...database.map((p) => ({ ...p, role: 'MySQL/MariaDB' })), ...redis.map((p) => ({ ...p, role: 'Redis' }))]
  for (const p of found) progress(`${p.role}: pid ${p.pid} (${p.name}), ${p.how}`)
  if (!database.length) progress('no MySQL/MariaDB process on this machine (remote or in a VM?): its CPU reads 0')
  if (!redis.length) progress('no redis-server process on this machine (remote or in a VM?): its CPU reads 0')

  progress(`fresh lab database (${users} users)`)
  const fixture = await resetLab(config, 50)
  // A rush's reads: browsing (cached), joining the queue (Redis), a seat map and a balance (MySQL);
  // every connection loops over the five.
  const workload = [steps.concert, steps.options, steps.join, steps.seatMap, steps.point].map((step) => withIdentity(step(fixture)))
  const rows: ClusterRow[] = []

  for (const workers of sizes) {
    const server = await startServer('app', { ...config, WORKERS: workers }, { pinning })
    try {
      if (workers === sizes[0]) {
        progress(`admitting ${users} users`)
        await admitAll(server.url, fixture)
      }
      await runLoad({ url: server.url, connections, durationS: warmupS, steps: workload })
      const stores = { mysql: database.map((p) => p.pid), redis: redis.map((p) => p.pid) }
      const idle = startCpuMeter(stores)
      await delay(idleS * 1000)
      const idleCpu = idle()
      progress(`${workers} worker(s): measuring for ${durationS} s`)
      const cpu = startCpuMeter({ app: server.workerPids, ...stores, loadGenerator: [process.pid] })
      const busy = startCpuBusyMeter(serverCpus)
      const memory = startMemoryWatch(() => server.workerPids, undefined)
      const result = await runLoad({ url: server.url, connections, durationS, steps: workload, sloMs: flags.sloMs })
      const used = cpu()
      const serverCpusBusy = busy()
      const cpuUsed = { app: used.app ?? 0, mysql: used.mysql ?? 0, redis: used.redis ?? 0, loadGenerator: used.loadGenerator ?? 0 }
      const okPerS = result.ok / result.durationS
      const row: ClusterRow = {
        workers,
        ...result,
        cpu: cpuUsed,
        idleCpu: { mysql: idleCpu.mysql ?? 0, redis: idleCpu.redis ?? 0 },
        serverCpusBusy,
        rssMaxMb: memory().rssMb,
        okPerS,
        cpuMsPerRequest: {
          app: msPerRequest(cpuUsed.app, okPerS),
          // The stores' other clients (the idle columns) are not this workload's cost.
          mysql: msPerRequest(Math.max(0, cpuUsed.mysql - (idleCpu.mysql ?? 0)), okPerS),
          redis: msPerRequest(Math.max(0, cpuUsed.redis - (idleCpu.redis ?? 0)), okPerS),
          loadGenerator: msPerRequest(cpuUsed.loadGenerator, okPerS),
        },
      }
      rows.push(row)
      progress(
        `${workers} worker(s): ${formatNumber(row.rps)} req/s, p99 ${row.latencyMs.p99} ms; CPU% app ${formatNumber(row.cpu.app)}, ` +
          `mysql ${formatNumber(row.cpu.mysql)}, redis ${formatNumber(row.cpu.redis)}, load generator ${formatNumber(row.cpu.loadGenerator)}`,
      )
    } finally {
      await server.stop()
    }
  }

  const table: Table = {
    headers: ['workers', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'app CPU%', `app % of ${serverCpus.length} CPU`, `${serverCpus.length} CPU busy %`, 'mysql CPU%', 'mysql idle', 'redis CPU%', 'redis idle', 'load gen CPU%', 'RSS max MB'],
    rows: rows.map((row) => [
      row.workers,
      row.rps,
      row.latencyMs.p50,
      row.latencyMs.p99,
      row.non2xx,
      row.errors,
      row.cpu.app,
      row.cpu.app / serverCpus.length,
      row.serverCpusBusy / serverCpus.length,
      row.cpu.mysql,
      row.idleCpu.mysql,
      row.cpu.redis,
      row.idleCpu.redis,
      row.cpu.loadGenerator,
      row.rssMaxMb,
    ]),
  }
  const perRequest: Table = {
    headers: ['workers', '2xx/s', 'app CPU µs/req', 'mysql CPU µs/req', 'redis CPU µs/req', 'load gen CPU µs/req'],
    rows: rows.map((row) => [row.workers, row.okPerS, ...[row.cpuMsPerRequest.app, row.cpuMsPerRequest.mysql, row.cpuMsPerRequest.redis, row.cpuMsPerRequest.loadGenerator].map((ms) => ms * 1000)]),
  }

  // One core of each store saturates at 1000 / (its CPU ms per request) req/s: the median over
  // the sizes, since a store's cost per request does not depend on how many app workers ask.
  const storeLimits = [
    { store: database[0]?.name ?? 'mysqld', msPerRequest: median(rows.map((row) => row.cpuMsPerRequest.mysql)) },
    { store: 'redis-server', msPerRequest: median(rows.map((row) => row.cpuMsPerRequest.redis)) },
  ].map((limit) => ({ ...limit, saturatesAt: limit.msPerRequest > 0 ? 1000 / limit.msPerRequest : Infinity }))
  const firstStore = storeLimits.reduce((low, limit) => (limit.saturatesAt < low.saturatesAt ? limit : low))
  const appMsPerRequest = median(rows.map((row) => row.cpuMsPerRequest.app))
  let usl: UslModel | undefined
  try {
    usl = fitUsl(rows.map((row) => ({ n: row.workers, throughput: row.okPerS })))
  } catch (error) {
    progress(`no USL fit: ${(error as Error).message}`)
  }
  const model = usl
  const prediction: Table | undefined = model && {
    headers: ['cores (= workers)', 'USL 2xx/s', `${firstStore.store} one core at`, 'predicted 2xx/s', 'limited by', 'app cores busy at that rate'],
    rows: PREDICTED_CORES.map((cores) => {
      const app = uslThroughput(model, cores)
      const predicted = Math.min(app, firstStore.saturatesAt)
      return [cores, app, firstStore.saturatesAt, predicted, predicted < app ? `${firstStore.store} (one core)` : 'app workers (USL)', (predicted * appMsPerRequest) / 1000]
    }),
  }
  const storesTable: Table = {
    headers: ['store', 'CPU µs per 2xx (median over sizes)', 'one core saturates at 2xx/s'],
    rows: storeLimits.map((limit) => [limit.store, limit.msPerRequest * 1000, limit.saturatesAt]),
  }
  const peak = model ? uslPeak(model) : Infinity
  const modelText = model
    ? `Fitted by least squares over the ${rows.length} measured sizes (2xx/s): λ = ${formatNumber(model.lambda)} 2xx/s for one worker, ` +
      `σ = ${model.sigma.toFixed(4)} (contention), κ = ${model.kappa.toFixed(5)} (crosstalk)` +
      `${Number.isFinite(peak) ? `; throughput peaks near N = ${formatNumber(peak)}` : '; no peak (κ = 0)'}. ` +
      `Each prediction is the lower of the USL's throughput and the rate at which one core of the first store to run out (${firstStore.store}) is busy; ` +
      `the last column is how many cores the app's workers need at that rate (median ${formatNumber(appMsPerRequest * 1000)} CPU µs per request), so ` +
      `hosts = that / the cores of one host. The same command on a larger machine checks the prediction.`
    : 'Fewer than three sizes were measured: no model was fitted (run with --workers 3 or more).'

  const processes: Table = {
    headers: ['component', 'pid', 'process', 'found'],
    rows: found.length ? found.map((p) => [p.role, p.pid, p.name, p.how]) : [['MySQL/MariaDB, Redis', '-', 'none found on this machine', '-']],
  }

  const best = rows.reduce((top, row) => (row.rps > top.rps ? row : top), rows[0]!)
  const serverCpuCount = serverCpus.length
  const notes = [
    ...(model && largest > serverCpuCount
      ? [
          `Only ${serverCpuCount} CPU(s) ran the servers: sizes past ${serverCpuCount} add workers but no cores, so the fitted σ and κ include CPU sharing ` +
            `and the predictions for more cores are a floor for the app's own scaling, checked only by running this command on a machine that has them.`,
        ]
      : []),
    ...(!pinning.applied && rows.some((row) => row.cpu.loadGenerator > 50)
      ? [`The load generator shared the servers' CPUs and used up to ${formatNumber(Math.max(...rows.map((row) => row.cpu.loadGenerator)))}% CPU: on this machine it takes that from the app, so the measured throughput, and λ with it, are lower than the app alone would reach.`]
      : []),
    `Most throughput with ${best.workers} worker(s): ${formatNumber(best.rps)} req/s, the app's workers using ${formatNumber(best.cpu.app)}% CPU against ${formatNumber(best.cpu.mysql)}% for MySQL and ${formatNumber(best.cpu.redis)}% for Redis.`,
    pinning.applied
      ? `The servers were pinned to ${serverCpus.length} CPU(s) (the load generator has its own): sizes past ${serverCpus.length} worker(s) only add processes competing for them. MySQL and Redis were not pinned.`
      : `Nothing was pinned: the app, the load generator, MySQL and Redis shared all ${cores} CPUs.`,
    ...(database.length ? [] : ['No MySQL/MariaDB process was found on this machine, so its CPU reads 0.']),
    ...(rows.some((row) => row.serverCpusBusy - row.cpu.app - (pinning.applied ? 0 : row.cpu.loadGenerator) > 20)
      ? [`Other processes (MySQL, Redis, anything else on the machine) kept the servers' CPUs busy too: \`${serverCpus.length} CPU busy %\` is well above what the app used, so it got less CPU than it could have.`]
      : []),
    ...(rows.some((row) => row.idleCpu.mysql > 10 || row.idleCpu.redis > 10)
      ? ['MySQL or Redis was busy before the lab loaded it (the "idle" columns): other clients share them, and their load is in the CPU% columns too.']
      : []),
    ...(redis.length ? [] : ['No redis-server process was found on this machine, so its CPU reads 0.']),
    ...(quick ? [] : ['The machine is shared: other work on it during the run shows up as noise.']),
  ]

  const cpuRows = rows.flatMap((row) =>
    Object.entries({ 'app workers': row.cpu.app, [database[0]?.name ?? 'mysql']: row.cpu.mysql, 'redis-server': row.cpu.redis, 'load generator': row.cpu.loadGenerator }).map(
      ([component, percent]) => ({ workers: row.workers, component, percent: Math.round(percent) }),
    ),
  )
  const perSize = rows.map((row) => ({ workers: row.workers, rps: Math.round(row.rps), p99: row.latencyMs.p99 }))

  return {
    title: 'seatrush cluster: worker count against throughput and CPU',
    intro:
      `A mixed workload (GET /concert/1, GET /concerts/1, POST /concert/wait, a 50-seat map and GET /point/:userId, looped by every connection) from ${connections} ` +
      `autocannon connections for ${durationS} s against the app with 1 to ${largest} workers (this machine has ${cores} cores). CPU% is ` +
      `utime + stime from /proc/<pid>/stat over the measured run, summed over each component's processes; 100% is one core busy. ` +
      `The idle columns are MySQL's and Redis's CPU% over ${idleS} s just before, with the server up but no load from the lab.`,
    sections: [
      { heading: 'Worker count', table },
      { heading: 'CPU per request', text: 'CPU microseconds each component spent per 2xx answer (the stores\' idle CPU subtracted).', table: perRequest },
      { heading: 'Stores: where one core runs out', table: storesTable },
      { heading: 'Universal Scalability Law: how many workers, how many hosts', text: modelText, ...(prediction ? { table: prediction } : {}) },
      { heading: 'Processes watched', text: 'The app workers were the cluster primary\'s children; the load generator is this process.', table: processes },
    ],
    config,
    parameters: { ...(model ? { uslLambda: Math.round(model.lambda), uslSigma: Number(model.sigma.toFixed(4)), uslKappa: Number(model.kappa.toFixed(5)) } : {}), connections, durationS, warmupS, idleS, users, largest, cores, serverCpus: serverCpus.join(' '), sloMs: flags.sloMs ?? 1000 },
    rows,
    notes,
    charts: [
      {
        name: 'cpu',
        title: 'CPU% per component vs workers',
        spec: lineChart({ title: 'CPU% per component (100 = one core)', rows: cpuRows, x: { field: 'workers', title: 'workers', integer: true }, y: { field: 'percent', title: 'CPU %' }, series: { field: 'component', title: 'component' } }),
      },
      {
        name: 'throughput',
        title: 'Throughput vs workers',
        spec: lineChart({ title: 'req/s vs workers', rows: perSize, x: { field: 'workers', title: 'workers', integer: true }, y: { field: 'rps', title: 'req/s' } }),
      },
      ...(model
        ? [
            {
              name: 'usl',
              title: 'Measured 2xx/s and the fitted Universal Scalability Law',
              spec: lineChart({
                title: `2xx/s vs workers: measured and USL (σ ${model.sigma.toFixed(3)}, κ ${model.kappa.toFixed(4)})`,
                rows: [
                  ...rows.map((row) => ({ workers: row.workers, series: 'measured', perS: Math.round(row.okPerS) })),
                  ...Array.from(new Set([...sizes, ...PREDICTED_CORES])).sort((a, b) => a - b).map((n) => ({ workers: n, series: 'USL fit', perS: Math.round(uslThroughput(model, n)) })),
                ],
                x: { field: 'workers', title: 'workers (log scale)', log: true },
                y: { field: 'perS', title: '2xx/s' },
                series: { field: 'series', title: '' },
              }),
            },
          ]
        : []),
      {
        name: 'p99',
        title: 'p99 latency vs workers',
        spec: lineChart({ title: 'p99 latency (ms) vs workers', rows: perSize, x: { field: 'workers', title: 'workers', integer: true }, y: { field: 'p99', title: 'p99 ms' } }),
      },
    ],
    summary: [table, perRequest, storesTable, ...(prediction ? [prediction] : [])],
  }
})
