import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { prepareTestData, testConfig } from './helpers/app.js'
import { ledgerMismatches } from './helpers/invariants.js'
import { isAlive, startServer } from './helpers/server-process.js'
import { bearer, send, type Reply } from './helpers/http.js'
import { identityToken } from './helpers/jwt.js'
import { waitFor } from './helpers/wait.js'

t.test('a worker killed with SIGKILL is replaced and the server keeps answering', async (t) => {
  const config = testConfig({ WORKERS: 2, SEED_USERS: 50, SEED_POINTS: 1000 })
  await prepareTestData(t, config)
  const server = await startServer(t, config)
  t.equal(server.workerPids.length, 2, 'two workers announced')

  // Four clients, each sending GET /point/1 back to back on fresh connections, for the whole test.
  const results: { startedAt: number; status?: number; error?: string }[] = []
  let loading = true
  const client = async () => {
    while (loading) {
      const startedAt = Date.now()
      try {
        const res = await send(server.baseUrl, 'GET', '/point/1', { timeoutMs: 3000 })
        results.push({ startedAt, status: res.status })
      } catch (error) {
        results.push({ startedAt, error: (error as Error).message })
      }
    }
  }
  const clients = Array.from({ length: 4 }, client)
  await waitFor('the clients to be answered', () => results.filter((r) => r.status === 200).length >= 8)

  const [victim, survivor] = server.workerPids as [number, number]
  const mark = server.logs.length
  const killedAt = Date.now()
  process.kill(victim, 'SIGKILL')

  const died = await server.waitForLog(/worker died; replacing it/, { after: mark })
  t.match(died, { worker: victim, signal: 'SIGKILL' }, 'the primary saw the worker die')
  t.notOk(isAlive(victim), 'the killed worker is gone')
  const listening = await server.waitForLog(/Server listening at/, { after: mark, timeoutMs: 15_000 })
  const replacement = listening.pid!
  const replacedAt = Date.now()
  t.not(replacement, victim, 'the replacement is a new process')
  t.not(replacement, survivor, 'the replacement is not the surviving worker')

  // Enough requests after it that both live workers served some (connections go round-robin).
  await waitFor('requests after the replacement', () => results.filter((r) => r.startedAt >= replacedAt).length >= 20)
  loading = false
  await Promise.all(clients)

  const duringReplacement = results.filter((r) => r.startedAt >= killedAt && r.startedAt < replacedAt)
  const afterReplacement = results.filter((r) => r.startedAt >= replacedAt)
  const errors = results.filter((r) => r.error)
  t.ok(duringReplacement.some((r) => r.status === 200), `answered while the worker was replaced (${duringReplacement.length} requests)`)
  t.ok(errors.length <= 4, `at most one failed request per client, at the kill (${errors.length}: ${errors.map((r) => r.error).join('; ')})`)
  t.ok(errors.every((r) => r.startedAt <= killedAt + 100), 'requests fail only in the instant of the kill')
  t.same(
    results.filter((r) => r.status !== undefined && r.status !== 200),
    [],
    'every answer is 200',
  )
  t.ok(afterReplacement.length > 0, `requests after the replacement (${afterReplacement.length})`)
  t.ok(
    afterReplacement.every((r) => r.status === 200),
    'every request after the replacement is 200',
  )

  // Connections are spread round-robin, so a few health checks reach both live workers.
  const answering = new Set<number>()
  const deadline = Date.now() + 5000
  while (answering.size < 2 && Date.now() < deadline) {
    const health = await send(server.baseUrl, 'GET', '/health')
    t.equal(health.status, 200)
    answering.add(health.body.pid)
  }
  t.same([...answering].sort(), [survivor, replacement].sort(), 'the survivor and the replacement answer /health')

  const exit = await server.stop()
  t.same(exit, { code: 0, signal: null }, 'the server still shuts down cleanly')
})

t.test('SIGTERM lets a slow in-flight request finish, then the server exits 0', async (t) => {
  const config = testConfig({
    WORKERS: 2,
    SEED_USERS: 50,
    SEED_POINTS: 1000,
    SHUTDOWN_TIMEOUT_MS: 5000,
    // Per-request log lines show when the slow request has reached a worker.
    LOG_LEVEL: 'debug',
  })
  const db = await prepareTestData(t, config)
  const server = await startServer(t, config)

  // PATCH /point with its body sent in two halves: the request is in flight from the first.
  const body = JSON.stringify({ userId: 3, charge: 700 })
  const half = Math.floor(body.length / 2)
  const slow = httpRequest(`${server.baseUrl}/point`, {
    method: 'PATCH',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...bearer(identityToken(3)) },
  })
  const answer = new Promise<Reply>((done, fail) => {
    slow.on('error', fail)
    slow.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }))
    })
  })
  let answered = false
  void answer.then(() => (answered = true), () => (answered = true))
  slow.write(body.slice(0, half))
  await server.waitForLog((line) => line.msg === 'incoming request' && (line.req as { method?: string })?.method === 'PATCH')

  const mark = server.logs.length
  const signalledAt = Date.now()
  process.kill(server.pid, 'SIGTERM')
  await server.waitForLog(/"msg":"draining workers"/, { after: mark })
  for (const pid of server.workerPids) await server.waitForLog((line) => line.msg === 'worker draining' && line.pid === pid, { after: mark })
  // A connection the primary hands over in the very instant a worker closes its listener is held by
  // that worker and reset when it exits; it is never served. Probe once the listeners are closed.
  await delay(100)

  // Once the workers drain, a new request is refused or answered 503, never served.
  let refused: string | undefined
  const refuseDeadline = Date.now() + 3000
  while (!refused && Date.now() < refuseDeadline) {
    try {
      const res = await send(server.baseUrl, 'GET', '/point/1', { timeoutMs: 1000 })
      if (res.status === 503) refused = '503'
    } catch (error) {
      refused = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    }
    if (!refused) await delay(20)
  }
  t.ok(refused === '503' || refused === 'ECONNREFUSED' || refused === 'ECONNRESET', `a new request is turned away while draining (${refused})`)
  t.notOk(answered, 'the slow request is still in flight')
  t.ok(server.logs.every((line) => line.msg !== 'all workers drained; bye'), 'the primary waits for it')

  slow.end(body.slice(half))
  const res = await answer
  t.equal(res.status, 200, 'the in-flight request finished')
  t.same(res.body, { userId: 3, point: 1700 }, 'with the charged balance')

  const exit = await server.waitForExit(config.SHUTDOWN_TIMEOUT_MS + 3000)
  t.same(exit, { code: 0, signal: null }, 'the primary exits 0')
  t.ok(Date.now() - signalledAt < config.SHUTDOWN_TIMEOUT_MS + 3000, `within the shutdown timeout (${Date.now() - signalledAt} ms)`)
  t.ok(server.logs.some((line) => line.msg === 'all workers drained; bye'))
  t.notOk(server.logs.some((line) => line.msg === 'worker died; replacing it'), 'no worker was replaced while draining')
  for (const pid of server.workerPids) t.notOk(isAlive(pid), `worker ${pid} is gone`)

  const history = await db.selectFrom('point_history').selectAll().where('user_id', '=', 3).execute()
  t.equal(history.length, 1, 'the charge was recorded once')
  t.match(history[0], { kind: 'CHARGE', amount: 700, balance_after: 1700 })
  t.same(await ledgerMismatches(db), [])
})

t.test('SIGINT to the whole process group drains cleanly', async (t) => {
  const config = testConfig({ WORKERS: 2, SEED_USERS: 50 })
  await prepareTestData(t, config)
  const server = await startServer(t, config)
  t.equal((await send(server.baseUrl, 'GET', '/point/1')).status, 200)

  // What Ctrl-C in a terminal does: every process of the group gets SIGINT at once.
  process.kill(-server.pid, 'SIGINT')
  const exit = await server.waitForExit(config.SHUTDOWN_TIMEOUT_MS + 3000)
  t.same(exit, { code: 0, signal: null }, 'the primary exits 0')
  t.match(server.logs.find((line) => line.msg === 'draining workers'), { signal: 'SIGINT' })
  t.ok(server.logs.some((line) => line.msg === 'all workers drained; bye'))
  t.notOk(server.logs.some((line) => line.msg === 'worker died; replacing it'), 'no worker died of the signal')
  for (const pid of server.workerPids) t.notOk(isAlive(pid), `worker ${pid} is gone`)
})

/** The pids holding the socket that listens on 127.0.0.1:`port` (read from /proc, as `ss -tlnp` does). */
function listenerPids(port: number, pids: number[]): number[] {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  const listening = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[1] === local && fields[3] === '0A')
  if (!listening) return []
  const socket = `socket:[${listening[9]}]`
  return pids.filter((pid) => readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === socket
    } catch {
      return false
    }
  }))
}

for (const [scheduling, accepting] of [['os', 'each worker'], ['round-robin', 'the primary alone']] as const) {
  t.test(`CLUSTER_SCHEDULING=${scheduling}: ${accepting} accepts new connections`, async (t) => {
    const config = testConfig({ WORKERS: 2, SEED_USERS: 10, CLUSTER_SCHEDULING: scheduling })
    await prepareTestData(t, config)
    const server = await startServer(t, config)
    const everyone = [server.pid, ...server.workerPids]
    const holders = listenerPids(server.port, everyone)
    // With round-robin only the primary has the listening socket and hands each connection over;
    // otherwise the primary made it and every worker listens on it too.
    t.same(holders.sort(), (scheduling === 'os' ? everyone : [server.pid]).sort(), 'who holds the listening socket')
    const answers = await Promise.all(Array.from({ length: 20 }, () => send(server.baseUrl, 'GET', '/health', { timeoutMs: 5000 })))
    t.same(answers.map((answer) => answer.status), Array(20).fill(200), 'every new connection is answered')
  })
}
