import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { concertQueueKeys } from '../src/queue/queue.js'
import { createRedis } from '../src/plugins/redis.js'
import { prepareTestData, testConfig } from './helpers/app.js'
import { startServer, type LogLine, type ServerProcess } from './helpers/server-process.js'
import { startNginx } from './helpers/nginx.js'
import { RedisCluster } from './helpers/redis-cluster.js'
import { assertInvariants } from './helpers/invariants.js'
import { activeToken, joinQueue } from './helpers/queue.js'
import { bearer, send, type Reply } from './helpers/http.js'
import { range } from './helpers/lists.js'
import { waitFor } from './helpers/wait.js'

// The repository's nginx config in front of two app hosts (each its own cluster primary with two
// workers and its own port) on one MySQL database and one Redis Cluster of three masters.

const MAX_ACTIVE = 60
const RACERS = 60
const IN_LINE = 80

const cluster = await RedisCluster.start({ masters: 3, replicas: 0 })
t.teardown(() => cluster.stop())

const config = testConfig({
  WORKERS: 2,
  REDIS_CLUSTER_NODES: cluster.seeds,
  // nginx connects to the hosts from 127.0.0.1: only it is believed about the client's address.
  TRUST_PROXY: '127.0.0.1',
  MAX_ACTIVE,
  ADMIT_BATCH: 10,
  ADMIT_INTERVAL_MS: 100,
  ACTIVE_TTL_MS: 600_000,
  SEED_POINTS: 100_000,
  SEAT_PRICE: 50_000,
  // Per-request lines (with the client address the app saw) are logged at debug.
  LOG_LEVEL: 'debug',
})
const db = await prepareTestData(t, config)
const hosts = (await Promise.all([startServer(t, config), startServer(t, config)])) as [ServerProcess, ServerProcess]
const nginx = await startNginx(t, [`127.0.0.1:${hosts[0].port}`, `127.0.0.1:${hosts[1].port}`])
const base = nginx.baseUrl
t.comment(`nginx ${base} (pid ${nginx.pid}, logs in ${nginx.dir}); hosts ${hosts.map((host) => `${host.baseUrl} pid ${host.pid}`).join(', ')}`)

const redis = createRedis(config)
await redis.connect()
t.teardown(() => redis.disconnect())
const queueKey = concertQueueKeys(config.REDIS_KEY_PREFIX, 1)

/** The upstream ports the access log says answered, from `fromLine` on. */
const upstreamPorts = (fromLine = 0) => new Set(nginx.accessLog().slice(fromLine).flatMap((line) => [...line.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]))))

t.test('the booking flow works through nginx, and the app sees the client address nginx forwarded', async (t) => {
  const userId = 150
  const token = await activeToken(base, userId, { timeoutMs: 20_000 })
  const days = await send(base, 'GET', '/concert/reservation/days/1', { headers: bearer(token) })
  t.equal(days.status, 200)
  const concertDetailId: number = days.body[0].concertDetailId
  t.equal((await send(base, 'GET', `/concert/seats/${concertDetailId}`, { headers: bearer(token) })).status, 200)
  const seat = { userId, concertDetailId, seatNo: 5 }
  const hold = await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(token) })
  t.equal(hold.status, 200, 'seat held')
  const pay = () => send(base, 'POST', '/concert/reservation/days', { body: seat, headers: { ...bearer(token), 'idempotency-key': 'nginx-pay-150' } })
  const paid = await pay()
  t.equal(paid.status, 200, 'paid')
  t.match(paid.body, { reservationId: hold.body.reservationId, amount: 50_000, point: 50_000 })
  t.same((await pay()).body, paid.body, 'the payment retried with its key, on whichever host, gets the first answer')
  t.equal((await send(base, 'DELETE', '/concert/wait', { headers: bearer(token) })).status, 204, 'the buyer leaves the line')
  t.same(upstreamPorts(), new Set(hosts.map((host) => host.port)), 'nginx sent the calls to both hosts')

  // Two client machines: 127.0.0.2, and 127.0.0.3 claiming to be 198.51.100.9 in its own header.
  const fromA = await send(base, 'GET', `/point/${userId}`, { localAddress: '127.0.0.2', headers: { 'x-request-id': 'client-a' } })
  const fromB = await send(base, 'GET', `/point/${userId}`, { localAddress: '127.0.0.3', headers: { 'x-request-id': 'client-b', 'x-forwarded-for': '198.51.100.9' } })
  t.same([fromA.status, fromB.status], [200, 200])
  const seenAs = async (reqId: string) => {
    const line = await Promise.any(hosts.map((host) => host.waitForLog((l: LogLine) => l.reqId === reqId && l.msg === 'incoming request')))
    return (line.req as { remoteAddress?: string }).remoteAddress
  }
  t.equal(await seenAs('client-a'), '127.0.0.2', "request.ip is the client's address from nginx's X-Forwarded-For, not nginx's 127.0.0.1")
  t.equal(await seenAs('client-b'), '127.0.0.3', 'an X-Forwarded-For the client wrote itself is not believed: the address nginx saw is')
})

t.test(`${RACERS} users race for one seat through nginx: exactly one wins; admission never above MAX_ACTIVE`, { timeout: 120_000 }, async (t) => {
  const actives: number[] = []
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      actives.push(await redis.zcard(queueKey.active))
      await delay(5)
    }
  })()
  t.teardown(() => {
    sampling = false
  })

  const tokens = new Map<number, string>()
  await Promise.all(
    range(1, IN_LINE).map(async (userId) => {
      const joined = await joinQueue(base, userId)
      if (joined.status !== 200) throw new Error(`join ${userId}: ${joined.status} ${JSON.stringify(joined.body)}`)
      tokens.set(userId, joined.body.token)
    }),
  )
  const auth = (userId: number) => bearer(tokens.get(userId)!)
  const racers = await waitFor(`${MAX_ACTIVE} users admitted`, async () => {
    const active = (await redis.zrange(queueKey.active, 0, -1)).map(Number)
    return active.length >= MAX_ACTIVE && active
  }, { timeoutMs: 30_000 })
  t.equal(racers.length, RACERS)

  const hold = async (userId: number): Promise<Reply> => {
    for (;;) {
      const reply = await send(base, 'PATCH', '/concert/seat', { body: { userId, concertDetailId: 1, seatNo: 1 }, headers: auth(userId) })
      if (reply.status !== 503) return reply
      await delay(20)
    }
  }
  const holds = await Promise.all(racers.map(hold))
  const winners = racers.filter((_, i) => holds[i]!.status === 200)
  t.equal(winners.length, 1, `${RACERS} users hold one seat at once through nginx: exactly one wins`)
  t.same(
    holds.filter((reply) => reply.status !== 200).map((reply) => `${reply.status} ${reply.body.code}`),
    Array(RACERS - 1).fill('409 SEAT_TAKEN'),
    'everyone else is told the seat is taken',
  )
  const winner = winners[0]!
  const paid = await send(base, 'POST', '/concert/reservation/days', { body: { userId: winner, concertDetailId: 1, seatNo: 1 }, headers: { ...auth(winner), 'idempotency-key': 'race-pay' } })
  t.equal(paid.status, 200, 'the winner pays')

  // Admitted users leave; the rest of the line gets in behind them, never more than MAX_ACTIVE at once.
  // Paying ends the winner's turn in the line.
  const left = new Set<number>([winner])
  await waitFor('everyone in line admitted and gone', async () => {
    const active = (await redis.zrange(queueKey.active, 0, -1)).map(Number).filter((userId) => !left.has(userId))
    for (const userId of active) left.add(userId)
    const gone = await Promise.all(active.map((userId) => send(base, 'DELETE', '/concert/wait', { headers: auth(userId) })))
    const refused = gone.find((reply) => reply.status !== 204)
    if (refused) throw new Error(`leaving the line: ${refused.status} ${JSON.stringify(refused.body)}`)
    return left.size === IN_LINE
  }, { timeoutMs: 30_000 })
  sampling = false
  await sampler
  t.ok(actives.length > 10, `the active count was sampled ${actives.length} times`)
  t.ok(Math.max(...actives) <= MAX_ACTIVE, `never more than MAX_ACTIVE=${MAX_ACTIVE} active (at most ${Math.max(...actives)})`)
  t.equal(Math.max(...actives), MAX_ACTIVE, 'the limit was reached, so it was the limit that held them back')
  const seat = await db.selectFrom('seats').selectAll().where('concert_detail_id', '=', 1).where('seat_no', '=', 1).executeTakeFirstOrThrow()
  t.match(seat, { status: 'SOLD', user_id: winner })
  await assertInvariants(t, db)
})

interface Answer {
  at: number
  method: string
  /** The HTTP status, or 0 when no answer came. */
  status: number
}

t.test('one host SIGKILLed mid-traffic: nginx sends everything to the other after a few failed answers', { timeout: 120_000 }, async (t) => {
  const [survivor, victim] = hosts
  const users = range(160, 16)
  const answers: Answer[] = []
  let running = true
  // Reads (GET, which nginx may retry on the other host) and charges (PATCH, which it must not).
  const client = async (userId: number) => {
    for (let i = 0; running; i++) {
      const [method, path, body] = i % 2 === 0 ? ['GET', `/point/${userId}`, undefined] : ['PATCH', '/point', { userId, charge: 10 }]
      const reply = await send(base, method, path, { body, timeoutMs: 5000 }).catch(() => undefined)
      answers.push({ at: Date.now(), method, status: reply?.status ?? 0 })
    }
  }
  const logFrom = nginx.accessLog().length
  const clients = Promise.all(users.map(client))
  await waitFor('traffic on both hosts', () => answers.length >= 200 && upstreamPorts(logFrom).size === 2, { timeoutMs: 30_000 })
  t.same(answers.filter((answer) => answer.status !== 200), [], 'every answer is 200 while both hosts run')

  const killedAt = Date.now()
  const before = answers.length
  const logAtKill = nginx.accessLog().length
  process.kill(-victim.pid, 'SIGKILL')
  t.same(await victim.waitForExit(), { code: null, signal: 'SIGKILL' }, 'the host is gone')
  // Past fail_timeout (5 s), so nginx has tried the dead host again and moved on.
  await waitFor('7 s of traffic after the kill', () => Date.now() - killedAt > 7000 && answers.length - before > 200, { timeoutMs: 60_000 })
  running = false
  await clients

  const after = answers.slice(before)
  const failed = after.filter((answer) => answer.status < 200 || answer.status > 299)
  const lastFailure = failed.at(-1)?.at
  const recoveryMs = lastFailure === undefined ? 0 : lastFailure - killedAt
  t.comment(`after the kill: ${after.length} answers, ${failed.length} not 2xx (${failed.slice(0, 20).map((a) => `${a.method} ${a.status}`).join(', ') || 'none'}); all 2xx from ${recoveryMs} ms after the kill`)
  // Each client has one request out at a time; those that fail were in flight on the dead host,
  // or sent on one of its keep-alive connections before nginx saw that connection close.
  t.ok(failed.length <= 2 * users.length, `a few failed answers, not a stream of them (${failed.length} for ${users.length} clients)`)
  t.same(failed.filter((answer) => answer.method !== 'PATCH' || answer.status !== 502), [], 'only charges that had reached the dead host fail (502): nginx retried the reads on the other host')
  t.ok(recoveryMs < 2000, `every answer is 2xx again within 2 s of the kill (${recoveryMs} ms)`)
  const tail = after.filter((answer) => answer.at > killedAt + 2000)
  t.ok(tail.length > 50 && tail.every((answer) => answer.status === 200), `the ${tail.length} answers after that, including those past fail_timeout, are all 200`)
  // A request nginx moved on lists both hosts: `upstream=<dead>, <survivor> upstream_status=502, 200`.
  const moved = nginx.accessLog().slice(logAtKill).filter((line) => line.includes(`upstream=127.0.0.1:${victim.port}, 127.0.0.1:${survivor.port}`))
  t.comment(`requests nginx moved from the dead host to the other: ${moved.length} (${moved.filter((line) => line.includes('"GET ')).length} GET, ${moved.filter((line) => line.includes('"PATCH ')).length} PATCH whose connection was refused)`)
  t.ok(moved.length > 0 && moved.every((line) => / 200 upstream=/.test(line)), 'requests that found the dead host were answered by the other one')
  t.notOk(nginx.errorLog().includes('[emerg]'), 'nginx logged no emergency')

  await assertInvariants(t, db)
  t.same(await survivor.stop(), { code: 0, signal: null }, 'the surviving host shuts down cleanly')
  t.same(await nginx.stop(), { code: 0, signal: null }, 'nginx shuts down cleanly')
})
