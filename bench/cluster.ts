/**
 * `npm run bench:cluster`: the same mixed workload against 1 .. 2 x cores workers; at each size
 * throughput, p99 and the CPU each component burned (app workers, MySQL, Redis, the load
 * generator), read from /proc/<pid>/stat. See docs/lab.md for how to read the report.
 */
import { cpus } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { runLoad, type LoadResult } from './lib/autocannon.js'
import { lineChart } from './lib/charts.js'
import { steps } from './lib/endpoints.js'
import { admitAll, resetLab } from './lib/fixture.js'
import { runLab } from './lib/lab.js'
import { DATABASE_NAMES, REDIS_NAMES, findService, startCpuBusyMeter, startCpuMeter, startMemoryWatch } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, serverCpuList, startServer } from './lib/server.js'

interface ClusterRow extends LoadResult {
  workers: number
  /** CPU% over the measured run, 100 = one core busy. */
  cpu: { app: number; mysql: number; redis: number; loadGenerator: number }
  /** MySQL's and Redis's CPU% just before, with no load from the lab: their other clients' share. */
  idleCpu: { mysql: number; redis: number }
  /** How busy the servers' CPUs were over the run, whoever kept them busy (100 = one core). */
  serverCpusBusy: number
  rssMaxMb: number
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
  const config = labConfig('cluster', users, { SHED_LOAD: false, ...flags.set })

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
  const workload = [steps.concert, steps.options, steps.join, steps.seatMap, steps.point].map((step) => step(fixture))
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
      const row: ClusterRow = {
        workers,
        ...result,
        cpu: { app: used.app ?? 0, mysql: used.mysql ?? 0, redis: used.redis ?? 0, loadGenerator: used.loadGenerator ?? 0 },
        idleCpu: { mysql: idleCpu.mysql ?? 0, redis: idleCpu.redis ?? 0 },
        serverCpusBusy,
        rssMaxMb: memory().rssMb,
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
  const processes: Table = {
    headers: ['component', 'pid', 'process', 'found'],
    rows: found.length ? found.map((p) => [p.role, p.pid, p.name, p.how]) : [['MySQL/MariaDB, Redis', '-', 'none found on this machine', '-']],
  }

  const best = rows.reduce((top, row) => (row.rps > top.rps ? row : top), rows[0]!)
  const notes = [
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
      { heading: 'Processes watched', text: 'The app workers were the cluster primary\'s children; the load generator is this process.', table: processes },
    ],
    config,
    parameters: { connections, durationS, warmupS, idleS, users, largest, cores, serverCpus: serverCpus.join(' '), sloMs: flags.sloMs ?? 1000 },
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
      {
        name: 'p99',
        title: 'p99 latency vs workers',
        spec: lineChart({ title: 'p99 latency (ms) vs workers', rows: perSize, x: { field: 'workers', title: 'workers', integer: true }, y: { field: 'p99', title: 'p99 ms' } }),
      },
    ],
    summary: [table, processes],
  }
})
