import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { bearer, send } from './helpers/http.js'
import { range } from './helpers/lists.js'
import { TEST_ADMIN_TOKEN, changeQueue, joinQueue } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

const EARLY = range(1, 20)
const LATE = range(21, 10)

t.test('users who join before the sale opens are admitted, in a shuffled order, before anyone who joins after it, and nobody before the opening', async (t) => {
  const { app } = await buildTestApp(t, { MAX_ACTIVE: 100, ADMIT_BATCH: 5, ADMIT_INTERVAL_MS: 100, ADMIN_TOKEN: TEST_ADMIN_TOKEN })
  const base = await listen(app)
  const opensAt = Date.now() + 3000
  // Concert 1 admits at the opening; concert 2 is paused, so its drawn line can be read whole.
  t.equal((await changeQueue(base, 1, { saleOpensAt: new Date(opensAt).toISOString() })).status, 200)
  t.equal((await changeQueue(base, 2, { saleOpensAt: new Date(opensAt).toISOString(), paused: true })).status, 200)
  t.equal((await send(base, 'GET', '/concert/1')).body.saleOpensAt, new Date(opensAt).toISOString(), 'the concert shows its opening')

  const tokens = new Map<number, string>()
  const answers = new Set<string>()
  for (const userId of EARLY) {
    for (const concertId of [1, 2]) {
      const joined = await joinQueue(base, userId, { concertId })
      answers.add(`${joined.status} ${joined.body.status} ${joined.body.opensAt}`)
      if (concertId === 1) tokens.set(userId, joined.body.token)
    }
  }
  t.same([...answers], [`200 PREQUEUE ${new Date(opensAt).toISOString()}`], 'every early join entered the pre-queue and was told the opening')
  const early = await send(base, 'GET', '/concert/wait', { headers: bearer(tokens.get(1)!) })
  t.match(early.body, { userId: 1, concertId: 1, status: 'PREQUEUE', position: 0, opensAt: new Date(opensAt).toISOString() }, 'the status call tells the pre-queue and the opening')
  t.ok(Date.now() < opensAt, 'the early users joined before the opening')

  await waitFor('the opening', () => Date.now() >= opensAt + 50, { timeoutMs: 5000 })
  const late = new Set<string>()
  for (const userId of LATE) {
    for (const concertId of [1, 2]) late.add(`${(await joinQueue(base, userId, { concertId })).status}`)
  }
  t.same([...late], ['200'], 'the late users joined')

  const admitted = app.queue.keys(1).admitted
  await waitFor('everyone admitted to concert 1', async () => (await app.redis.zcard(admitted)) === EARLY.length + LATE.length, { timeoutMs: 15_000 })
  const times = new Map<number, number>()
  const entries = await app.redis.zrange(admitted, 0, -1, 'WITHSCORES')
  for (let i = 0; i < entries.length; i += 2) times.set(Number(entries[i]), Number(entries[i + 1]))
  t.ok(Math.min(...times.values()) >= opensAt, 'nobody was admitted before the opening')
  const lastEarly = Math.max(...EARLY.map((u) => times.get(u)!))
  const firstLate = Math.min(...LATE.map((u) => times.get(u)!))
  t.ok(lastEarly <= firstLate, 'every early user was admitted no later than the first late one')

  const line = (await app.redis.zrange(app.queue.keys(2).waiting, 0, -1)).map(Number)
  t.same([...line.slice(0, EARLY.length)].sort((a, b) => a - b), EARLY, 'the paused concert drew every early user ahead of the late ones')
  t.notSame(line.slice(0, EARLY.length), EARLY, 'in an order that is not the order they joined')
  t.same(line.slice(EARLY.length), LATE, 'the late users follow in the order they joined')
  const firstAdmitted = [...times].sort((a, b) => a[1] - b[1]).slice(0, 5).map(([u]) => u).sort((a, b) => a - b)
  t.comment(`concert 2 drew ${line.slice(0, EARLY.length).join(',')}; concert 1 admitted ${firstAdmitted.join(',')} first`)
})
