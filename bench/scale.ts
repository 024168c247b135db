/**
 * `npm run bench:scale`: what each engine of the scale-out adds, in one run against one workload.
 * The booking flow's mix (browse, join, poll, dates, seat map, hold, balance) against a baseline
 * (one host, one Redis, no replica), then a Redis Cluster of 3 masters instead of the one Redis,
 * then concert reads from a MariaDB replica, then one and two hosts behind nginx: 2xx/s and p99 of
 * each as a ratio to the baseline, and the CPU each component (app, MySQL primary and replica,
 * Redis, nginx, load generator) spent per 2xx answer. Then each call of the flow alone on the
 * baseline, for its CPU cost per component: what docs/scaling.md sizes a rush from. Every engine
 * is a private one on a free port under .data/, so its CPU is this run's alone.
 */
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseMysqlUrl } from '../src/db/connection.js'
import { range } from '../test/helpers/lists.js'
import { ReplicatedMariaDb } from '../test/helpers/mariadb.js'
import { runNginx, type Nginx } from '../test/helpers/nginx.js'
import { RedisCluster } from '../test/helpers/redis-cluster.js'
import { RedisServer } from '../test/helpers/redis-server.js'
import { ownStore } from '../test/helpers/store.js'
import { runLoad, type LoadResult, type RequestStep } from './lib/autocannon.js'
import { barChart, baselineRatioChart } from './lib/charts.js'
import { endpoints, steps } from './lib/endpoints.js'
import { admitAll, resetLab, type Fixture, type Hold } from './lib/fixture.js'
import { LAB_IDENTITY, withIdentity } from './lib/identity.js'
import { runLab } from './lib/lab.js'
import { childPids, startCpuMeter } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, serverCpuList, startServer, type RunningServer, type Settings } from './lib/server.js'

const COMPONENTS = ['app', 'mysqlPrimary', 'mysqlReplica', 'redis', 'nginx', 'loadGenerator'] as const
type Component = (typeof COMPONENTS)[number]
const COMPONENT_TITLES: Record<Component, string> = {
  app: 'app',
  mysqlPrimary: 'MySQL primary',
  mysqlReplica: 'MySQL replica',
  redis: 'Redis',
  nginx: 'nginx',
  loadGenerator: 'load generator',
}

interface Setup {
  name: string
  redis: 'single' | 'cluster'
  replica: boolean
  /** `direct`: the load generator talks to the one host; otherwise nginx in front of 1 or 2 hosts. */
  front: 'direct' | 1 | 2
}

const SETUPS: Setup[] = [
  { name: 'baseline: one host, one Redis, no replica', redis: 'single', replica: false, front: 'direct' },
  { name: 'Redis Cluster of 3 masters', redis: 'cluster', replica: false, front: 'direct' },
  { name: 'read replica', redis: 'single', replica: true, front: 'direct' },
  { name: 'nginx, one host', redis: 'single', replica: false, front: 1 },
  { name: 'nginx, two hosts', redis: 'single', replica: false, front: 2 },
]

interface ScaleRow extends LoadResult {
  /** `setups`: the mix on each setup; `calls`: one call of the flow alone on the baseline. */
  part: 'setups' | 'calls'
  case: string
  /** 2xx answers per second. */
  okPerS: number
  /** setups: okPerS and p99 over the baseline's of this run (calls: 1). */
  throughputRatio: number
  p99Ratio: number
  /** CPU% over the measured run (100 = one core busy). */
  cpu: Record<Component, number>
  /** CPU milliseconds each component spent per 2xx answer. */
  cpuMsPerRequest: Record<Component, number>
  /** SELECTs the app's read-only user ran on the replica during the run. */
  replicaSelects: number
  workers: number[]
}

const msPerRequest = (percent: number, perS: number) => (perS > 0 ? (percent * 10) / perS : 0)
const ratio = (value: number, base: number) => (base > 0 ? value / base : 0)
const endpoint = (name: string) => endpoints.find((e) => e.name === name && !e.variant)!

/** Users past the admitted ones, each joining once: the cost of a first join. */
function freshJoins(firstUser: number, count: number): RequestStep {
  const users = range(firstUser, count)
  return { next: () => ({ method: 'POST', path: '/concert/wait', json: { userId: users.pop() ?? firstUser } }) }
}

await runLab<ScaleRow>('scale', async ({ flags, pinning, progress }) => {
  const quick = flags.quick
  const durationS = flags.durationS ?? (quick ? 1 : 8)
  const callS = quick ? 1 : 4
  const warmupS = quick ? 1 : 2
  const connections = flags.connections?.[0] ?? 64
  const users = flags.users ?? (quick ? 100 : 1000)
  const fresh = quick ? 200 : 4000
  const hallSeats = flags.hallSeats ?? (quick ? 2000 : 20_000)
  const serverCpus = serverCpuList(pinning).length
  // Two hosts split the servers' CPUs between them, as two containers on one machine would.
  const hostWorkers = { 1: serverCpus, 2: Math.max(1, Math.floor(serverCpus / 2)) }

  // Every engine is stopped by its pid and its folder removed when this process exits, however
  // it ends; the report reads their versions before that.
  const cleanup: Array<() => void> = []
  process.on('exit', () => cleanup.forEach((step) => step()))
  const killing = (pid: number | undefined) => () => {
    try {
      if (pid) process.kill(pid, 'SIGKILL')
    } catch {}
  }
  const removing = (dir: string) => () => rmSync(dir, { recursive: true, force: true })

  progress('starting a MariaDB primary and replica, a Redis and a Redis Cluster of 3 masters (private, under .data/)')
  const mysql = await ReplicatedMariaDb.start()
  cleanup.push(killing(mysql.primary.pid), killing(mysql.replica.pid), removing(mysql.dir))
  const redisDir = resolve('.data', `scale-redis-${randomBytes(4).toString('hex')}`)
  cleanup.push(removing(redisDir))
  const redis = await RedisServer.start(redisDir, ['--appendonly', 'no'])
  cleanup.unshift(killing(redis.pid))
  const cluster = await RedisCluster.start({ masters: 3, replicas: 0 })
  cleanup.unshift(...cluster.nodes.map((node) => killing(node.pid)))
  cleanup.push(removing(cluster.dir))
  const store = ownStore('bench', 'scale')
  const database = parseMysqlUrl(String(flags.set.MYSQL_URL ?? store.MYSQL_URL)).database
  const base: Settings = {
    ...LAB_IDENTITY,
    // Each setup is measured at what it can do; the lab's thousand users hold many seats each.
    SHED_LOAD: false,
    MAX_HOLDS_PER_USER: 10_000,
    ...flags.set,
    MYSQL_URL: mysql.primary.url(database),
    REDIS_URL: redis.url,
  }
  const config = labConfig('scale', users + fresh, base)
  const rows: ScaleRow[] = []

  /** A fresh store, the hosts (and nginx) of `setup` started, every user but the fresh ones admitted. */
  async function bringUp(setup: Setup) {
    const settings: Settings = {
      ...base,
      ...(setup.redis === 'cluster' ? { REDIS_CLUSTER_NODES: cluster.seeds } : {}),
      ...(setup.replica ? { MYSQL_REPLICA_URL: mysql.replicaUrl(database) } : {}),
    }
    const hostConfig = labConfig('scale', users + fresh, settings)
    const all = await resetLab(hostConfig, hallSeats)
    await mysql.waitUntilCaughtUp()
    // The fresh users are seeded but never admitted: they are the first joins.
    const admitted = (userId: number) => userId <= users
    const fixture: Fixture = { ...all, users, usersWithoutHold: all.usersWithoutHold.filter(admitted) }
    const hosts: RunningServer[] = []
    let nginx: Nginx | undefined
    const count = setup.front === 2 ? 2 : 1
    for (let i = 0; i < count; i++) {
      hosts.push(await startServer('app', { ...hostConfig, WORKERS: hostWorkers[count] }, { pinning }))
    }
    if (setup.front !== 'direct') {
      const upstreams = hosts.map((host) => new URL(host.url).host)
      // One host is the same upstream twice: nginx's config always names two.
      nginx = await runNginx([upstreams[0]!, upstreams[1] ?? upstreams[0]!], { accessLog: false })
    }
    const url = nginx?.baseUrl ?? hosts[0]!.url
    const killNginx = () => {
      try {
        if (nginx) process.kill(-nginx.pid, 'SIGKILL')
      } catch {}
    }
    cleanup.unshift(killNginx)
    const stop = async () => {
      await nginx?.stop().catch(() => {})
      nginx?.remove()
      cleanup.splice(cleanup.indexOf(killNginx), 1)
      await Promise.all(hosts.map((host) => host.stop()))
    }
    try {
      await admitAll(url, fixture)
    } catch (error) {
      await stop()
      throw error
    }
    const meter = () =>
      startCpuMeter({
        app: hosts.flatMap((host) => host.allPids()),
        mysqlPrimary: [mysql.primary.pid!],
        mysqlReplica: [mysql.replica.pid!],
        redis: setup.redis === 'cluster' ? cluster.nodes.map((node) => node.pid!) : [redis.pid!],
        nginx: nginx ? [nginx.pid, ...childPids(nginx.pid)] : [],
        loadGenerator: [process.pid],
      })
    return { url, fixture, stop, meter, workers: hosts.map(() => hostWorkers[count]) }
  }

  /** One measured load with CPU accounting: the row, ratios left at 1. */
  async function measure(part: ScaleRow['part'], name: string, up: Awaited<ReturnType<typeof bringUp>>, load: () => Promise<LoadResult>): Promise<ScaleRow> {
    const selectsBefore = (await mysql.readerCommands()).selects
    const cpuMeter = up.meter()
    const result = await load()
    const used = cpuMeter()
    const cpu = Object.fromEntries(COMPONENTS.map((component) => [component, used[component] ?? 0])) as Record<Component, number>
    const okPerS = result.ok / result.durationS
    const row: ScaleRow = {
      part,
      case: name,
      ...result,
      okPerS,
      throughputRatio: 1,
      p99Ratio: 1,
      cpu,
      cpuMsPerRequest: Object.fromEntries(COMPONENTS.map((component) => [component, msPerRequest(cpu[component], okPerS)])) as Record<Component, number>,
      replicaSelects: (await mysql.readerCommands()).selects - selectsBefore,
      workers: up.workers,
    }
    progress(`${name}: ${formatNumber(okPerS)} 2xx/s, p99 ${result.latencyMs.p99} ms, CPU% ${COMPONENTS.map((c) => `${COMPONENT_TITLES[c]} ${formatNumber(cpu[c])}`).join(', ')}`)
    return row
  }

  // The booking flow as a rush weighs it: users poll the line far more often than they hold a
  // seat (bench:rush counts about 17 polls per hold), so a loop of a connection polls four times.
  const mix = (fixture: Fixture) => {
    const holds: Hold[] = []
    const poll = endpoint('GET /concert/wait').step(fixture, holds)
    return [
      steps.concert(fixture),
      steps.join(fixture),
      poll,
      poll,
      poll,
      poll,
      endpoint('GET /concert/reservation/days/:concertId').step(fixture, holds),
      steps.seatMap(fixture),
      endpoint('PATCH /concert/seat').step(fixture, holds),
      steps.point(fixture),
    ].map(withIdentity)
  }

  for (const setup of SETUPS) {
    progress(`${setup.name}: fresh store, hosts up, ${users} users admitted`)
    const up = await bringUp(setup)
    try {
      const workload = mix(up.fixture)
      await runLoad({ url: up.url, connections, durationS: warmupS, steps: workload })
      const row = await measure('setups', setup.name, up, () => runLoad({ url: up.url, connections, durationS, steps: workload, sloMs: flags.sloMs }))
      const baseline = rows[0]
      if (baseline) Object.assign(row, { throughputRatio: ratio(row.okPerS, baseline.okPerS), p99Ratio: ratio(row.latencyMs.p99, baseline.latencyMs.p99) })
      rows.push(row)
    } finally {
      await up.stop()
    }
  }

  // Each call alone on the baseline: its CPU per component. Holds run before payments, which
  // pay the holds won (each payment gives up its payer's slot, so they come last).
  progress('each call alone on the baseline')
  const up = await bringUp(SETUPS[0]!)
  try {
    const { fixture } = up
    const holds: Hold[] = []
    const reads = [steps.point(fixture), steps.seatMap(fixture), endpoint('GET /concert/wait').step(fixture, holds)].map(withIdentity)
    await runLoad({ url: up.url, connections, durationS: warmupS, steps: reads })
    const calls: Array<[string, RequestStep, (() => number) | undefined]> = [
      ['join (first, of a fresh user)', freshJoins(users + 1, fresh), () => fresh],
      ['join again (already in line)', steps.join(fixture), undefined],
      ['poll (GET /concert/wait)', endpoint('GET /concert/wait').step(fixture, holds), undefined],
      ['dates (GET /concert/reservation/days)', endpoint('GET /concert/reservation/days/:concertId').step(fixture, holds), undefined],
      [`seat map (${config.SEATS_PER_DETAIL} seats)`, steps.seatMap(fixture), undefined],
      ['concert page (GET /concert/:id)', steps.concert(fixture), undefined],
      ['balance (GET /point/:id)', steps.point(fixture), undefined],
      ['hold (PATCH /concert/seat)', endpoint('PATCH /concert/seat').step(fixture, holds), undefined],
      ['payment (POST /concert/reservation/days)', endpoint('POST /concert/reservation/days').step(fixture, holds), () => holds.length],
    ]
    for (const [name, step, amount] of calls) {
      const requestCount = amount?.()
      // autocannon refuses more connections than requests.
      const callConnections = requestCount ? Math.min(connections, requestCount) : connections
      rows.push(await measure('calls', name, up, () => runLoad({ url: up.url, connections: callConnections, durationS: callS, requestCount, steps: [withIdentity(step)], sloMs: flags.sloMs })))
    }
  } finally {
    await up.stop()
  }

  // Its admin connections would keep this process alive; the report needs only the one Redis and the primary.
  await cluster.stop()
  const setupRows = rows.filter((row) => row.part === 'setups')
  const callRows = rows.filter((row) => row.part === 'calls')
  const baseline = setupRows[0]!
  const byName = (name: string) => setupRows.find((row) => row.case === name)!
  const replicaRow = byName(SETUPS[2]!.name)
  const x = (value: number) => `${formatNumber(value)}x`
  const others = setupRows.slice(1)
  const finding =
    `Against the baseline's ${formatNumber(baseline.okPerS)} 2xx/s (p99 ${formatNumber(baseline.latencyMs.p99)} ms) on ${serverCpus} server CPU(s): ` +
    others.map((row) => `${row.case} ${x(row.throughputRatio)} the 2xx/s at ${x(row.p99Ratio)} the p99`).join('; ') +
    (others.some((row) => row.throughputRatio > 1.05) ? '.' : '; none added throughput on one machine.')

  const setupTable: Table = {
    headers: ['setup', 'workers', '2xx/s', '÷ baseline', 'p99 ms', '÷ baseline', 'non-2xx', 'errors', ...COMPONENTS.map((c) => `${COMPONENT_TITLES[c]} CPU%`), 'replica SELECTs'],
    rows: setupRows.map((row) => [
      row.case,
      row.workers.join(' + '),
      row.okPerS,
      row.throughputRatio,
      row.latencyMs.p99,
      row.p99Ratio,
      row.non2xx,
      row.errors,
      ...COMPONENTS.map((c) => row.cpu[c]),
      row.replicaSelects,
    ]),
  }
  const perRequest = (part: ScaleRow[]): Table => ({
    headers: ['', '2xx/s', 'p99 ms', 'non-2xx', ...COMPONENTS.map((c) => `${COMPONENT_TITLES[c]} µs`), 'servers µs (all but the load generator)'],
    rows: part.map((row) => [
      row.case,
      row.okPerS,
      row.latencyMs.p99,
      row.non2xx,
      ...COMPONENTS.map((c) => row.cpuMsPerRequest[c] * 1000),
      COMPONENTS.filter((c) => c !== 'loadGenerator').reduce((sum, c) => sum + row.cpuMsPerRequest[c], 0) * 1000,
    ]),
  })
  const loadGeneratorPeak = Math.max(...rows.map((row) => row.cpu.loadGenerator))
  const notes = [
    finding,
      pinning.applied
      ? `The app hosts were pinned to ${serverCpus} CPU(s) and the load generator to its own; MySQL, Redis and nginx were not pinned and shared every CPU with them. ` +
        `Two hosts split the same CPU(s) (${hostWorkers[2]} worker(s) each): a second host on one machine adds no CPU, so its row shows nginx's cost and the split, not capacity.`
      : `Nothing was pinned: the app, MySQL, Redis, nginx and the load generator shared all ${serverCpus} CPUs.`,
    `The load generator used up to ${formatNumber(loadGeneratorPeak)}% CPU${loadGeneratorPeak > 90 ? ': it was near one full core, so it may have been the limit in that row' : ''}.`,
    `Reads through the replica: ${formatNumber(replicaRow.replicaSelects)} SELECTs during the replica's run. Concert pages, dates and seat maps are cached for CONCERT_CACHE_MS (${config.CONCERT_CACHE_MS} ms) in each worker, so few of the reads reach any database.`,
    `Holds and payments went to a ${hallSeats}-seat hall with MAX_HOLDS_PER_USER raised for the lab's ${users} users; the first join row is ${fresh} users seeded but never admitted, each joining once.`,
    'Every engine ran here, privately, on this machine (a MariaDB primary and replica, a Redis, a Redis Cluster of 3 masters without replicas, nginx), so each CPU% is this run\'s work alone.',
    ...(quick ? [] : ['The machine is shared: other work on it during the run shows up as noise.']),
  ]

  return {
    title: 'seatrush scale: what each engine adds, on one machine',
    intro:
      `**${finding}**\n\n![2xx/s and p99 of each setup over the baseline](scale.svg)\n\n` +
      `One workload, the booking flow (GET /concert/1, POST /concert/wait, GET /concert/wait four times, GET /concert/reservation/days/1, a ${config.SEATS_PER_DETAIL}-seat map, ` +
      `PATCH /concert/seat, GET /point/:userId per loop, with the users' identity and queue tokens), from ${connections} autocannon connections for ${durationS} s ` +
      `after ${warmupS} s of warm-up, on each setup in turn, each on a fresh store with ${users} users admitted. Throughput counts 2xx only; ratios are to the baseline of this run. ` +
      `CPU% is utime + stime from /proc/<pid>/stat of each component's processes over the measured run (100 = one core). Then each call alone on the baseline for ${callS} s ` +
      '(the first joins and the payments as many as there are users and holds): its CPU per 2xx answer per component.',
    sections: [
      { heading: 'Setups', table: setupTable },
      { heading: 'CPU per request, per setup', text: 'CPU microseconds each component spent per 2xx answer of the mix.', table: perRequest(setupRows) },
      { heading: 'CPU per call, on the baseline', text: 'Each call of the flow alone: CPU microseconds each component spent per 2xx answer. docs/scaling.md sizes a rush from these.', table: perRequest(callRows) },
    ],
    config,
    parameters: { connections, durationS, callS, warmupS, users, freshJoins: fresh, hallSeats, serverCpus, hostWorkers: `${hostWorkers[1]} (one host), ${hostWorkers[2]} each (two hosts)`, sloMs: flags.sloMs ?? 1000 },
    rows,
    notes,
    charts: [
      {
        name: 'scale',
        title: '2xx/s and p99 of each setup over the baseline',
        spec: baselineRatioChart({ title: 'Each setup over the baseline (1 = no change)', category: 'setup', throughput: '2xx/s', rows: setupRows }),
      },
      {
        name: 'cpu',
        title: 'CPU per 2xx answer, per component and setup',
        spec: barChart({
          title: 'CPU µs per 2xx answer',
          rows: setupRows.flatMap((row) => COMPONENTS.map((c) => ({ setup: row.case, component: COMPONENT_TITLES[c], us: Math.round(row.cpuMsPerRequest[c] * 1000) }))),
          category: { field: 'setup' },
          value: { field: 'us', title: 'CPU µs per 2xx' },
          series: { field: 'component', title: 'component' },
        }),
      },
      {
        name: 'calls',
        title: 'CPU per call, per component',
        spec: barChart({
          title: 'CPU µs per 2xx answer of each call alone',
          rows: callRows.flatMap((row) => COMPONENTS.map((c) => ({ call: row.case, component: COMPONENT_TITLES[c], us: Math.round(row.cpuMsPerRequest[c] * 1000) }))),
          category: { field: 'call' },
          value: { field: 'us', title: 'CPU µs per 2xx' },
          series: { field: 'component', title: 'component' },
        }),
      },
    ],
    summary: [setupTable, perRequest(callRows)],
  }
})

// The private engines are child processes whose handles keep the event loop alive: exiting runs
// the cleanup registered above, which stops them by pid and removes their folders.
process.exit()
