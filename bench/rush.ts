/**
 * `npm run bench:rush`: a ticket rush end to end. First the join burst on `npm start` defaults
 * (distinct users joining through many connections at once: statuses, p99, MySQL statements per
 * join). Then the rush: N users pre-queue before the sale opens, are shuffled into the line at the
 * opening, poll GET /concert/wait at the ETA the server gives, and once admitted read the seat
 * map, hold a random free seat and pay, until the hall is sold out. See docs/lab.md for how to
 * read the report.
 */
import { randomInt } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { createConnection } from 'mysql2/promise'
import { loadConfig, type Config } from '../src/config.js'
import { createDb, parseMysqlUrl } from '../src/db/connection.js'
import { prepareDatabase } from '../src/db/prepare.js'
import { SEED_CONCERT_ID } from '../src/db/seed.js'
import { concertQueueKeys } from '../src/queue/queue.js'
import { invariantViolations } from '../test/helpers/invariants.js'
import { TEST_IDENTITY_SECRET, identityToken } from '../test/helpers/jwt.js'
import { eachConcurrently, range } from '../test/helpers/lists.js'
import { joinRequest } from '../test/helpers/queue.js'
import { dropStore, storeBeside } from '../test/helpers/store.js'
import { lineChart } from './lib/charts.js'
import { keepAliveClient, type Answer } from './lib/keepalive.js'
import { runLab } from './lib/lab.js'
import { all2xx, callStats, percentile, statusText, type CallStats } from './lib/latency.js'
import { startMysqlCounter, type MysqlCommands } from './lib/mysql-counter.js'
import { DATABASE_NAMES, REDIS_NAMES, findService, listenDrops, somaxconn, startCpuMeter } from './lib/proc.js'
import { formatNumber, type Table } from './lib/report.js'
import { labConfig, startServer, type Pinning } from './lib/server.js'

const ADMIN_TOKEN = 'seatrush-bench-admin-token-rush'

/** The rush's queue: slots free up as buyers pay, so the hall sells out in bounded time. */
const RUSH_QUEUE = { MAX_ACTIVE: 300, ADMIT_BATCH: 100, ADMIT_INTERVAL_MS: 250 }

/** A client polls at the ETA it is given, but at least every this often (a heartbeat well inside WAITING_TTL_MS)... */
const MAX_POLL_S = 30
/** ... and never more often than this. */
const MIN_POLL_S = 1

type Call = 'join' | 'poll' | 'seat map' | 'hold' | 'pay' | 'leave'
const CALLS: Call[] = ['join', 'poll', 'seat map', 'hold', 'pay', 'leave']

interface Fairness {
  /** Users in line at the opening whose admission the lab saw. */
  compared: number
  /** Users in line at the opening not admitted before the end (the hall sold out first). */
  notAdmitted: number
  /** Admissions the lab did not see: admitted and gone (paid and left) between two reads. */
  unseen: number
  /** How many places each user's admission strayed from their place at the opening (0 inside their tick's batch). */
  meanDisplacement: number
  p99Displacement: number
  maxDisplacement: number
  /** Users admitted outside the range of ranks their place at the opening allowed. */
  displaced: number
}

interface RushRow {
  phase: 'burst' | 'rush'
  users: number
  connections: number
  /** burst: first join sent to last answered; rush: opening to sold out (or to the time limit). */
  durationS: number
  joinsPerS: number
  allJoins2xx: boolean
  calls: Partial<Record<Call, CallStats>>
  mysql: MysqlCommands & { joins: number; statementsPerJoin: number; globalQuestions: number }
  /** CPU% (100 = one core) over the phase. */
  cpu: { app: number; mysql: number; redis: number; loadGenerator: number }
  /** burst: connections the kernel dropped because a listen queue was full (machine-wide). */
  listenDrops?: number
  /** The app's listen backlog as the kernel applies it: LISTEN_BACKLOG capped by net.core.somaxconn. */
  backlog?: number
  /** burst: joins sent on a connection they opened, and joins sent on one kept alive. */
  byConnection?: { opened: CallStats; keptAlive: CallStats }
  /** burst: join latency by when the join was sent, in BURST_BUCKET_S buckets from the first. */
  burstTimeline?: Array<{ t: number; p50Ms: number; p99Ms: number; count: number }>
  sellOutS?: number | null
  sold?: number
  soldTwice?: number
  ledgerMismatches?: number
  otherViolations?: number
  fairness?: Fairness
  outcomes?: Record<string, number>
}

interface Sample {
  call: Call
  /** Seconds since the opening when the request had its connection. */
  t: number
  ms: number
  status: number
}

/** MySQL's global `Questions` counter: every client of the server counts, not only the measured one. */
async function globalQuestions(config: Config): Promise<number> {
  const connection = await createConnection({ uri: parseMysqlUrl(config.MYSQL_URL).serverUrl })
  try {
    const [rows] = await connection.query("SHOW GLOBAL STATUS LIKE 'Questions'")
    return Number((rows as Array<{ Value: string }>)[0]?.Value ?? 0)
  } finally {
    await connection.end()
  }
}

function stores(config: Config) {
  const port = (url: string, fallback: number) => Number(new URL(url).port || fallback)
  return {
    mysql: findService(port(config.MYSQL_URL, 3306), DATABASE_NAMES).map((found) => found.pid),
    redis: findService(port(config.REDIS_URL, 6379), REDIS_NAMES).map((found) => found.pid),
  }
}

const cpuOf = (measured: Record<string, number>) => ({
  app: measured.app ?? 0,
  mysql: measured.mysql ?? 0,
  redis: measured.redis ?? 0,
  loadGenerator: measured.loadGenerator ?? 0,
})

/** The width of the join burst's latency buckets (seconds since the first join). */
const BURST_BUCKET_S = 0.25

/** The join burst on `npm start` defaults (SEED_USERS aside): every user joins once, nothing else. */
async function joinBurst(base: Config, users: number, connections: number, pinning: Pinning, progress: (message: string) => void): Promise<RushRow> {
  const config = loadConfig({
    ...storeBeside(base, 'burst'),
    REDIS_URL: base.REDIS_URL,
    SEED_USERS: String(users),
    // Not performance settings: the lab signs identity tokens, and its servers stay on 127.0.0.1.
    IDENTITY_JWT_SECRET: TEST_IDENTITY_SECRET,
    HOST: '127.0.0.1',
    EMBEDDED_SERVICES: 'never',
  })
  progress(`join burst: fresh database with ${users} users`)
  await dropStore(config)
  await prepareDatabase(config)
  const counter = await startMysqlCounter(config.MYSQL_URL)
  const server = await startServer('app', { ...config, MYSQL_URL: counter.url }, { pinning })
  const client = keepAliveClient(server.url, connections)
  try {
    const requests = range(1, users).map((userId) => joinRequest(userId))
    // Start-up reads (the catalog, the pools) settle before the burst is measured.
    await delay(1000)
    const before = counter.counts()
    const questionsBefore = await globalQuestions(config)
    const cpu = startCpuMeter({ app: server.allPids(), ...stores(config), loadGenerator: [process.pid] })
    progress(`join burst: ${users} users through ${connections} connections`)
    const dropsBefore = listenDrops()
    const started = performance.now()
    const answers = await eachConcurrently(requests, connections, (request) => client.send(request.method, request.path, request.options))
    const durationS = (performance.now() - started) / 1000
    const used = cpu()
    const drops = listenDrops() - dropsBefore
    const after = counter.counts()
    const questions = (await globalQuestions(config)) - questionsBefore
    const join = callStats(answers)
    const buckets = new Map<number, Answer[]>()
    for (const answer of answers) {
      const bucket = Math.floor((answer.at - started) / 1000 / BURST_BUCKET_S) * BURST_BUCKET_S
      let inBucket = buckets.get(bucket)
      if (!inBucket) buckets.set(bucket, (inBucket = []))
      inBucket.push(answer)
    }
    const burstTimeline = [...buckets]
      .sort(([a], [b]) => a - b)
      .map(([t, inBucket]) => {
        const stats = callStats(inBucket)
        return { t, p50Ms: stats.p50Ms, p99Ms: stats.p99Ms, count: stats.count }
      })
    const statements = after.statements - before.statements
    progress(`join burst: ${formatNumber(users / durationS)} joins/s, p99 ${join.p99Ms} ms, ${statusText(join.statuses)}, ${statements} MySQL statements`)
    return {
      phase: 'burst',
      users,
      connections,
      durationS,
      joinsPerS: users / durationS,
      allJoins2xx: all2xx(join),
      calls: { join },
      mysql: { statements, commands: after.commands - before.commands, joins: users, statementsPerJoin: statements / users, globalQuestions: questions },
      cpu: cpuOf(used),
      listenDrops: drops,
      backlog: Math.min(config.LISTEN_BACKLOG, somaxconn()),
      byConnection: { opened: callStats(answers.filter((answer) => answer.fresh)), keptAlive: callStats(answers.filter((answer) => !answer.fresh)) },
      burstTimeline,
    }
  } finally {
    client.close()
    await server.stop()
    await counter.close()
    await dropStore(config)
  }
}

/** Each user's place at the opening against the order the queue admitted them in (see docs/lab.md). */
function fairness(lineAtOpening: string[], admittedAt: Map<string, number>, admissions: number): Fairness {
  // Ranks of admission: users admitted in one tick share its range of ranks.
  const line = lineAtOpening.filter((user) => admittedAt.has(user))
  const byTime = [...line].sort((a, b) => admittedAt.get(a)! - admittedAt.get(b)!)
  const range = new Map<string, [number, number]>()
  for (let start = 0; start < byTime.length; ) {
    let end = start
    const tick = admittedAt.get(byTime[start]!)
    while (end + 1 < byTime.length && admittedAt.get(byTime[end + 1]!) === tick) end++
    for (let i = start; i <= end; i++) range.set(byTime[i]!, [start + 1, end + 1])
    start = end + 1
  }
  const displacements = line.map((user, index) => {
    const [first, last] = range.get(user)!
    const place = index + 1
    return Math.max(0, first - place, place - last)
  })
  const sorted = [...displacements].sort((a, b) => a - b)
  return {
    compared: line.length,
    notAdmitted: lineAtOpening.length - line.length - Math.max(0, admissions - admittedAt.size),
    unseen: Math.max(0, admissions - admittedAt.size),
    meanDisplacement: displacements.reduce((sum, d) => sum + d, 0) / Math.max(1, displacements.length),
    p99Displacement: percentile(sorted, 0.99),
    maxDisplacement: sorted.at(-1) ?? 0,
    displaced: displacements.filter((d) => d > 0).length,
  }
}

await runLab<RushRow>('rush', async ({ flags, pinning, progress }) => {
  const quick = flags.quick
  const users = flags.users ?? (quick ? 300 : 20_000)
  const hallSeats = flags.hallSeats ?? (quick ? 60 : 5000)
  const connections = flags.connections?.[0] ?? (quick ? 50 : 1000)
  const burstUsers = quick ? 200 : 10_000
  const burstConnections = quick ? 50 : 1000
  const limitS = flags.durationS ?? (quick ? 60 : 900)
  const workers = flags.workers ?? pinning.serverCpuCount
  const defaults = loadConfig({})
  const config = labConfig('rush', users, {
    WORKERS: workers,
    SEED_DETAILS: 1,
    SEATS_PER_DETAIL: hallSeats,
    ...RUSH_QUEUE,
    ACTIVE_TTL_MS: defaults.ACTIVE_TTL_MS,
    RATE_LIMIT_WAIT_PER_MIN: defaults.RATE_LIMIT_WAIT_PER_MIN,
    RATE_LIMIT_PAY_PER_MIN: defaults.RATE_LIMIT_PAY_PER_MIN,
    ADMIN_TOKEN,
    ...flags.set,
  })

  const burst = await joinBurst(config, burstUsers, burstConnections, pinning, progress)
  if (flags.burstOnly) {
    const part = burstReport(burst)
    return {
      title: 'seatrush rush: the join burst',
      intro:
        `The **join burst** alone (\`--burst-only\`): ${burst.users} distinct users join the queue once each through ${burst.connections} keep-alive connections, ` +
        'against a server on `npm start` defaults (SEED_USERS aside); latencies are from the moment a request had its connection, connecting included.',
      sections: part.sections,
      config,
      parameters: { burstUsers: burst.users, burstConnections: burst.connections },
      rows: [burst],
      notes: part.notes,
      charts: [part.chart],
      summary: [part.table, part.connectionTable],
    }
  }

  progress(`rush: fresh database with ${users} users and one option of ${hallSeats} seats`)
  await dropStore(config)
  await prepareDatabase(config)
  const db = createDb(config.MYSQL_URL, 2)
  const redis = new Redis(config.REDIS_URL)
  const keys = concertQueueKeys(config.REDIS_KEY_PREFIX, SEED_CONCERT_ID)
  const counter = await startMysqlCounter(config.MYSQL_URL)
  const server = await startServer('app', { ...config, MYSQL_URL: counter.url }, { pinning })
  const client = keepAliveClient(server.url, connections)
  try {
    const [detail] = await db.selectFrom('concert_details').select('id').where('concert_id', '=', SEED_CONCERT_ID).execute()
    const detailId = detail!.id
    const identities = range(0, users + 1).map((userId) => `Bearer ${identityToken(Math.max(1, userId))}`)

    // The sale opens once the join burst has had time to pre-queue everyone, at the rate the
    // burst above measured (with room to spare); joins that come later go to the back of the line.
    const leadS = Math.ceil(Math.max(5, (1.5 * users) / Math.max(1, burst.joinsPerS) + 3))
    const opensAt = Date.now() + leadS * 1000
    const opened = await client.send('PATCH', `/admin/queues/${SEED_CONCERT_ID}`, {
      body: { saleOpensAt: new Date(opensAt).toISOString() },
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    })
    if (opened.status !== 200) throw new Error(`setting the sale's opening answered ${opened.status}: ${JSON.stringify(opened.body)}`)
    const t0 = performance.now() + (opensAt - Date.now())
    const since = (at: number) => (at - t0) / 1000

    const samples: Sample[] = []
    let stopped = false
    // Sleeping users, woken all at once at the end (a Set: O(1) per sleep with 20,000 asleep).
    const sleeping = new Set<{ timer: NodeJS.Timeout; wake: () => void }>()
    const stop = () => {
      stopped = true
      for (const sleeper of sleeping) {
        clearTimeout(sleeper.timer)
        sleeper.wake()
      }
      sleeping.clear()
    }
    const sleep = (ms: number) =>
      new Promise<void>((wake) => {
        if (stopped) return wake()
        const sleeper = {
          wake,
          timer: setTimeout(() => {
            sleeping.delete(sleeper)
            wake()
          }, ms),
        }
        sleeping.add(sleeper)
      })
    const call = async (name: Call, method: string, path: string, options: { body?: unknown; headers?: Record<string, string> }): Promise<Answer> => {
      const answer = await client.send(method, path, options)
      samples.push({ call: name, t: since(answer.at), ms: answer.ms, status: answer.status })
      return answer
    }
    const pollDelay = (etaSeconds: number) => 1000 * Math.min(MAX_POLL_S, Math.max(MIN_POLL_S, etaSeconds)) * (1 + Math.random() * 0.1)

    let sold = 0
    let joinedCount = 0
    let soldOutAt: number | undefined
    let joinBurstEnd: { at: number; counts: MysqlCommands; questions: Promise<number> } | undefined
    const outcomes: Record<string, number> = {}
    const finish = (outcome: string): void => void (outcomes[outcome] = (outcomes[outcome] ?? 0) + 1)
    const countsAtStart = counter.counts()
    const questionsAtStart = await globalQuestions(config)

    const retryable = (status: number) => status === 0 || status === 503 || status === 429

    const rushUser = async (userId: number): Promise<void> => {
      const identity = { authorization: identities[userId]! }
      let standing: { status: string; etaSeconds: number } | undefined
      let auth: Record<string, string> = {}
      let firstJoin = true
      while (standing?.status !== 'ACTIVE') {
        if (stopped) return finish('still waiting at the end')
        if (!standing) {
          const joined = await call('join', 'POST', '/concert/wait', { body: { userId }, headers: identity })
          if (joined.status === 200) {
            standing = joined.body
            auth = { authorization: `Bearer ${joined.body.token}` }
            if (firstJoin && ++joinedCount === users) {
              joinBurstEnd = { at: performance.now(), counts: counter.counts(), questions: globalQuestions(config) }
            }
            firstJoin = false
          } else if (retryable(joined.status)) await sleep(1000)
          else return finish(`join refused (${joined.status})`)
          continue
        }
        await sleep(pollDelay(standing.etaSeconds))
        if (stopped) return finish('still waiting at the end')
        const polled = await call('poll', 'GET', '/concert/wait', { headers: auth })
        if (polled.status === 200) standing = polled.body
        else if (polled.status === 404) standing = undefined
        else if (!retryable(polled.status)) return finish(`poll refused (${polled.status})`)
      }

      for (let round = 0; round < 10 && !stopped; round++) {
        const map = await call('seat map', 'GET', `/concert/seats/${detailId}?view=available`, { headers: auth })
        if (retryable(map.status)) {
          await sleep(1000)
          continue
        }
        if (map.status !== 200) return finish(`seat map refused (${map.status})`)
        const free: number[] = map.body.available
        if (free.length === 0) {
          await call('leave', 'DELETE', '/concert/wait', { headers: auth })
          return finish('found the hall sold out')
        }
        for (let attempt = 0; attempt < 3 && !stopped; attempt++) {
          const seatNo = free[randomInt(free.length)]!
          const seat = { userId, concertDetailId: detailId, seatNo }
          const held = await call('hold', 'PATCH', '/concert/seat', { body: seat, headers: auth })
          if (held.status === 409) continue
          if (retryable(held.status)) break
          if (held.status !== 200) return finish(`hold refused (${held.status})`)
          for (;;) {
            const paid = await call('pay', 'POST', '/concert/reservation/days', { body: seat, headers: { ...auth, 'idempotency-key': `rush-${userId}` } })
            if (paid.status === 200) {
              if (++sold === hallSeats) {
                soldOutAt = performance.now()
                stop()
              }
              return finish('bought a seat')
            }
            if (!retryable(paid.status)) return finish(`pay refused (${paid.status})`)
            await sleep(1000)
          }
        }
      }
      return finish(stopped ? 'buying at the end' : 'gave up after 10 seat maps')
    }

    // What the queue admits, read from Redis: the line at the opening, and each admission's tick.
    let lineAtOpening: string[] = []
    const admittedAt = new Map<string, number>()
    let lastAdmission = 0
    const sampleAdmissions = async () => {
      const found = await redis.zrangebyscore(keys.admitted, `(${lastAdmission}`, '+inf', 'WITHSCORES')
      for (let i = 0; i < found.length; i += 2) {
        const score = Number(found[i + 1])
        if (!admittedAt.has(found[i]!)) admittedAt.set(found[i]!, score)
        lastAdmission = Math.max(lastAdmission, score)
      }
    }
    const watchOpening = async () => {
      await sleep(Math.max(0, opensAt - Date.now() - 100))
      while (!stopped) {
        const [[, openedAt], [, waiting], [, admitted]] = (await redis
          .multi()
          .hget(keys.concert, 'openedAt')
          .zrange(keys.waiting, 0, -1)
          .zrange(keys.admitted, 0, -1, 'WITHSCORES')
          .exec()) as [[null, string | null], [null, string[]], [null, string[]]]
        if (openedAt) {
          // Users admitted before this look (the tick that opened the sale) headed the line.
          const head: Array<[string, number]> = []
          for (let i = 0; i < admitted.length; i += 2) head.push([admitted[i]!, Number(admitted[i + 1])])
          head.sort((a, b) => a[1] - b[1])
          lineAtOpening = [...head.map(([user]) => user), ...waiting]
          return
        }
        await delay(5)
      }
    }
    const timeline: Array<{ t: number; admitted: number; sold: number }> = []
    const sampler = setInterval(() => {
      void sampleAdmissions().catch(() => {})
    }, 50)
    const timelineTimer = setInterval(() => {
      void redis.get(keys.admissions).then((admitted) => timeline.push({ t: since(performance.now()), admitted: Number(admitted ?? 0), sold }))
    }, 1000)
    const deadline = setTimeout(stop, leadS * 1000 + limitS * 1000)

    progress(`rush: ${users} users join; the sale opens in ${leadS} s (queue ${JSON.stringify(RUSH_QUEUE)}, ${connections} connections)`)
    const cpu = startCpuMeter({ app: server.allPids(), ...stores(config), loadGenerator: [process.pid] })
    const opening = watchOpening()
    const progressTimer = setInterval(() => progress(`rush: ${since(performance.now()).toFixed(0)} s after the opening, ${joinedCount} joined, ${admittedAt.size} admitted, ${sold} sold`), 10_000)
    await Promise.all([...range(1, users).map(rushUser), opening])
    clearInterval(progressTimer)
    clearTimeout(deadline)
    clearInterval(sampler)
    clearInterval(timelineTimer)
    stop()
    const used = cpu()
    await sampleAdmissions()
    const admissions = Number((await redis.get(keys.admissions)) ?? 0)
    timeline.push({ t: since(performance.now()), admitted: admissions, sold })
    const countsAtEnd = counter.counts()
    progress(`rush: ${soldOutAt ? `sold out ${since(soldOutAt).toFixed(1)} s after the opening` : `${sold} of ${hallSeats} seats sold when it stopped`}`)

    // Integrity, from MySQL itself.
    const violations = await invariantViolations(db)
    const soldInMysql = await db
      .selectFrom('seats')
      .select(({ fn }) => fn.countAll<number>().as('n'))
      .where('concert_detail_id', '=', detailId)
      .where('status', '=', 'SOLD')
      .executeTakeFirstOrThrow()

    const joinStats = callStats(samples.filter((sample) => sample.call === 'join'))
    const calls: RushRow['calls'] = {}
    for (const name of CALLS) {
      const mine = samples.filter((sample) => sample.call === name)
      if (mine.length) calls[name] = callStats(mine)
    }
    const joinEnd = joinBurstEnd ?? { at: performance.now(), counts: countsAtEnd, questions: globalQuestions(config) }
    const joinStatements = joinEnd.counts.statements - countsAtStart.statements
    const fair = fairness(lineAtOpening, admittedAt, admissions)
    const rush: RushRow = {
      phase: 'rush',
      users,
      connections,
      durationS: since(soldOutAt ?? performance.now()),
      joinsPerS: joinedCount / Math.max(0.001, (joinEnd.at - (t0 - leadS * 1000)) / 1000),
      allJoins2xx: all2xx(joinStats),
      calls,
      mysql: {
        statements: countsAtEnd.statements - countsAtStart.statements,
        commands: countsAtEnd.commands - countsAtStart.commands,
        joins: joinedCount,
        statementsPerJoin: joinStatements / Math.max(1, joinedCount),
        globalQuestions: (await joinEnd.questions) - questionsAtStart,
      },
      cpu: cpuOf(used),
      sellOutS: soldOutAt ? since(soldOutAt) : null,
      sold: Number(soldInMysql.n),
      soldTwice: violations.seatsConfirmedTwice.length,
      ledgerMismatches: violations.ledger.length,
      otherViolations:
        violations.negativeBalances.length +
        violations.confirmedPayments.length +
        violations.confirmedHistory.length +
        violations.orphanPayments.length +
        violations.soldSeats.length,
      fairness: fair,
      outcomes,
    }
    return report(rush, burst, samples, timeline, { config, leadS, hallSeats, limitS, workers })
  } finally {
    client.close()
    redis.disconnect()
    await server.stop()
    await counter.close()
    await db.destroy()
  }
})

/** The join burst's table, notes and chart: the burst-only report, and the first part of the full one. */
function burstReport(burst: RushRow) {
  const burstJoin = burst.calls.join!
  const table: Table = {
    headers: ['users', 'connections', 'seconds', 'joins/s', 'p50 ms', 'p99 ms', 'statuses', 'every join 2xx', 'MySQL statements', 'per join', 'global Questions (shared server)', 'app CPU%', 'mysqld CPU%', 'redis CPU%', 'load gen CPU%', 'listen drops'],
    rows: [
      [
        burst.users,
        burst.connections,
        burst.durationS,
        burst.joinsPerS,
        burstJoin.p50Ms,
        burstJoin.p99Ms,
        statusText(burstJoin.statuses),
        burst.allJoins2xx ? 'yes' : 'NO',
        burst.mysql.statements,
        burst.mysql.statementsPerJoin.toFixed(4),
        burst.mysql.globalQuestions,
        burst.cpu.app,
        burst.cpu.mysql,
        burst.cpu.redis,
        burst.cpu.loadGenerator,
        burst.listenDrops ?? 0,
      ],
    ],
  }
  const { opened, keptAlive } = burst.byConnection!
  const connectionTable: Table = {
    headers: ['joins sent', 'joins', 'p50 ms', 'p99 ms', 'max ms'],
    rows: [
      ['on a connection they opened', opened.count, opened.p50Ms, opened.p99Ms, opened.maxMs],
      ['on a connection kept alive', keptAlive.count, keptAlive.p50Ms, keptAlive.p99Ms, keptAlive.maxMs],
    ],
  }
  const notes: string[] = []
  const target = 1 / 20
  notes.push(
    `Join burst (${burst.users} distinct users, ${burst.connections} connections, npm start defaults): ` +
      `${burst.allJoins2xx ? 'every join answered 2xx' : `NOT every join answered 2xx (${statusText(burstJoin.statuses)})`}; ` +
      `p99 ${burstJoin.p99Ms} ms (${burstJoin.p99Ms < 1000 ? 'under' : 'NOT under'} 1 s); ` +
      `${burst.mysql.statements} MySQL statements, ${burst.mysql.statementsPerJoin.toFixed(4)} per join (${burst.mysql.statementsPerJoin < target ? 'under' : 'NOT under'} the 1 per 20 target).`,
  )
  if (burst.listenDrops) {
    notes.push(
      `The kernel dropped ${burst.listenDrops} connection attempts on full listen queues during the join burst (ListenDrops, machine-wide): ` +
        "those clients retried their SYN after 1 s or 3 s, which the join latency includes (timed from the moment the request had its socket, connecting included). " +
        `The app listened with a backlog of ${burst.backlog} (LISTEN_BACKLOG, capped by net.core.somaxconn).`,
    )
  }
  const rows = burst.burstTimeline!.flatMap((bucket) => [
    { seconds: bucket.t, percentile: 'p50', ms: bucket.p50Ms },
    { seconds: bucket.t, percentile: 'p99', ms: bucket.p99Ms },
  ])
  const chart = {
    name: 'burst',
    title: 'Join latency by when the join was sent',
    spec: lineChart({
      title: `join latency (ms) by when it was sent, in ${BURST_BUCKET_S} s buckets from the first join`,
      rows,
      x: { field: 'seconds', title: 'seconds since the first join' },
      y: { field: 'ms', title: 'ms' },
      series: { field: 'percentile', title: 'percentile' },
    }),
  }
  const sections = [
    { heading: 'Join burst (npm start defaults)', table },
    {
      heading: 'Join burst by connection',
      text:
        'The first join on each of the connections also opened it (latency counts connecting, accepting and handing the connection to a worker); ' +
        'the rest went out on connections kept alive. A tail that only the first kind has comes from taking connections, not from the join.',
      table: connectionTable,
    },
  ]
  return { table, connectionTable, notes, chart, sections }
}

function report(
  rush: RushRow,
  burst: RushRow,
  samples: Sample[],
  timeline: Array<{ t: number; admitted: number; sold: number }>,
  { config, leadS, hallSeats, limitS, workers }: { config: Config; leadS: number; hallSeats: number; limitS: number; workers: number },
) {
  const ms = (value: number) => formatNumber(value)
  const burstPart = burstReport(burst)
  const callsTable: Table = {
    headers: ['call', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'statuses'],
    rows: CALLS.filter((name) => rush.calls[name]).map((name) => {
      const stats = rush.calls[name]!
      return [name, stats.count, stats.p50Ms, stats.p99Ms, stats.maxMs, statusText(stats.statuses)]
    }),
  }
  const fair = rush.fairness!
  const rushTable: Table = {
    headers: ['measure', 'value'],
    rows: [
      ['users / seats', `${rush.users} / ${hallSeats}`],
      ['time to sell out (s after the opening)', rush.sellOutS === null ? `not sold out within ${limitS} s (${rush.sold} sold)` : ms(rush.sellOutS!)],
      ['seats sold (MySQL)', rush.sold!],
      ['seats sold twice (MySQL)', rush.soldTwice!],
      ['ledger mismatches', rush.ledgerMismatches!],
      ['other invariant violations', rush.otherViolations!],
      ['joins, joins/s over the pre-opening burst', `${rush.mysql.joins}, ${ms(rush.joinsPerS)}`],
      ['MySQL statements over the join burst, per join', `${formatNumber(rush.mysql.statementsPerJoin * rush.mysql.joins)}, ${rush.mysql.statementsPerJoin.toFixed(4)}`],
      ['MySQL statements over the whole rush', rush.mysql.statements],
      ['app / mysqld / redis / load gen CPU% (whole rush)', [rush.cpu.app, rush.cpu.mysql, rush.cpu.redis, rush.cpu.loadGenerator].map(ms).join(' / ')],
      ['outcomes', Object.entries(rush.outcomes!).map(([what, n]) => `${what}: ${n}`).join(', ')],
    ],
  }
  const fairTable: Table = {
    headers: ['users compared', 'not admitted', 'admitted unseen', 'displaced', 'mean displacement', 'p99 displacement', 'max displacement'],
    rows: [[fair.compared, fair.notAdmitted, fair.unseen, fair.displaced, fair.meanDisplacement, fair.p99Displacement, fair.maxDisplacement]],
  }

  const notes: string[] = [...burstPart.notes]
  notes.push(
    rush.sellOutS === null
      ? `The hall was NOT sold out within ${limitS} s after the opening: ${rush.sold} of ${hallSeats} seats sold.`
      : `The hall of ${hallSeats} seats sold out ${formatNumber(rush.sellOutS!)} s after the opening, to ${rush.users} users; ${rush.soldTwice} seats sold twice, ${rush.ledgerMismatches} ledger mismatches.`,
  )
  notes.push(
    'MySQL statements are counted by a relay in front of MySQL that only the measured server uses (COM_QUERY and COM_STMT_EXECUTE, what `Questions` counts); ' +
      "the server's global `Questions` delta is shown beside it but counts every other client of the shared MySQL server too.",
  )
  notes.push(
    `mysqld and redis-server CPU is the whole process: other work on the shared servers is included.${
      Math.max(rush.cpu.loadGenerator, burst.cpu.loadGenerator) > 80 ? ' The load generator used most of its core: it may have been the limit.' : ''
    }`,
  )

  // Charts: the sale's progress, and latency per call in 1 s buckets.
  const progressRows = timeline.flatMap((point) => [
    { seconds: Math.round(point.t * 10) / 10, measure: 'admitted', value: point.admitted },
    { seconds: Math.round(point.t * 10) / 10, measure: 'sold', value: point.sold },
  ])
  const buckets = new Map<string, number[]>()
  for (const sample of samples) {
    const key = `${sample.call}\t${Math.floor(sample.t)}`
    let bucket = buckets.get(key)
    if (!bucket) buckets.set(key, (bucket = []))
    bucket.push(sample.ms)
  }
  const latencyRows = [...buckets].flatMap(([key, values]) => {
    const [call, second] = key.split('\t') as [string, string]
    const sorted = values.sort((a, b) => a - b)
    return [
      { seconds: Number(second), call, percentile: 'p50', ms: Math.round(percentile(sorted, 0.5)) },
      { seconds: Number(second), call, percentile: 'p99', ms: Math.round(percentile(sorted, 0.99)) },
    ]
  })
  latencyRows.sort((a, b) => a.seconds - b.seconds)

  return {
    title: 'seatrush rush: a hall sold out end to end',
    intro:
      `First the **join burst**: ${burst.users} distinct users join the queue once each through ${burst.connections} keep-alive connections, ` +
      'against a server on `npm start` defaults (SEED_USERS aside). Then the **rush**: ' +
      `${rush.users} users join in a burst before the sale opens (${leadS} s after the joins start) and are shuffled into the line at the opening; ` +
      `each polls GET /concert/wait at the ETA it is given (between ${MIN_POLL_S} and ${MAX_POLL_S} s, plus up to 10%), and once admitted reads the seat map ` +
      `(\`?view=available\`), holds a random free seat (another on 409) and pays, until the ${hallSeats} seats are sold. ` +
      `The queue runs with MAX_ACTIVE=${config.MAX_ACTIVE}, ADMIT_BATCH=${config.ADMIT_BATCH}, ADMIT_INTERVAL_MS=${config.ADMIT_INTERVAL_MS}; ` +
      `${rush.connections} keep-alive connections carry every user's calls; latencies are from the moment a request had its connection.`,
    sections: [
      ...burstPart.sections,
      { heading: 'Rush', table: rushTable },
      { heading: 'Calls during the rush', table: callsTable },
      {
        heading: 'Fairness',
        text:
          "Each user's place in the line right after the opening's shuffle, against the order the queue admitted them in (read from Redis every 50 ms). " +
          "Users admitted in one tick share that tick's range of ranks; a user's displacement is how many places their place lies outside it (0 inside). " +
          'Users still in line when the hall sold out are left out (not admitted), and so are users admitted and gone between two reads (admitted unseen).',
        table: fairTable,
      },
    ],
    config,
    parameters: {
      users: rush.users,
      hallSeats,
      connections: rush.connections,
      burstUsers: burst.users,
      burstConnections: burst.connections,
      openingLeadS: leadS,
      limitS,
      workers,
      minPollS: MIN_POLL_S,
      maxPollS: MAX_POLL_S,
    },
    rows: [burst, rush],
    notes,
    charts: [
      burstPart.chart,
      {
        name: 'progress',
        title: 'Admitted and sold over time',
        spec: lineChart({
          title: 'users admitted and seats sold, by seconds since the opening',
          rows: progressRows,
          x: { field: 'seconds', title: 'seconds since the opening' },
          y: { field: 'value', title: 'users / seats' },
          series: { field: 'measure', title: 'measure' },
        }),
      },
      {
        name: 'latency',
        title: 'Latency per call over time',
        spec: lineChart({
          title: 'latency (ms) per call, by second since the opening',
          rows: latencyRows,
          x: { field: 'seconds', title: 'seconds since the opening' },
          y: { field: 'ms', title: 'ms' },
          series: { field: 'call', title: 'call' },
          dash: { field: 'percentile', title: 'percentile' },
        }),
      },
    ],
    summary: [burstPart.table, burstPart.connectionTable, rushTable, callsTable, fairTable],
  }
}
