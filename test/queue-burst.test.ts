import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { send } from './helpers/http.js'
import { eachConcurrently, range } from './helpers/lists.js'
import { joinQueue } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

const USERS = 3000
const CONNECTIONS = 200

t.test(`${USERS} users joining at once through ${CONNECTIONS} connections: all answered, one entry each, no MySQL query`, { timeout: 120_000 }, async (t) => {
  // One tick long enough that, after the first (which sweeps expired holds in MySQL), no other
  // runs during the burst: every statement the pool sees then comes from the joins.
  const { app } = await buildTestApp(t, { SEED_USERS: USERS, ADMIT_INTERVAL_MS: 600_000, RATE_LIMIT_WAIT_PER_MIN: 0 })
  // Listeners run one after another, so once this one ran, the sweep before it has finished.
  let rounds = 0
  app.onAdmissionTick(async () => void rounds++)
  const base = await listen(app)
  await waitFor('the first admission round and its hold sweep', () => rounds > 0, { timeoutMs: 15_000 })

  // Every statement this app sends takes a connection from its pool first.
  let statements = 0
  app.dbPool.on('acquire', () => statements++)

  const replies = await eachConcurrently(range(1, USERS), CONNECTIONS, (userId) => joinQueue(base, userId, { timeoutMs: 60_000 }))
  const statuses = new Map<number, number>()
  for (const reply of replies) statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1)
  t.same([...statuses], [[200, USERS]], 'every join answered 200')
  t.equal(statements, 0, 'the joins sent MySQL no statement')

  const line = await app.redis.zrange(app.queue.keys(1).waiting, 0, -1)
  t.equal(line.length, USERS, 'one entry per user')
  t.same(new Set(line.map(Number)), new Set(range(1, USERS)), 'the line holds exactly the users who joined')
  t.same(
    replies.map((reply) => reply.body.position).sort((a, b) => a - b),
    range(1, USERS),
    'each user was told a place of its own',
  )

  // The counter sees the app's statements: a read that needs MySQL moves it.
  t.equal((await send(base, 'GET', '/point/1')).status, 200)
  t.ok(statements > 0, `a call that reads MySQL is counted (${statements})`)
})
