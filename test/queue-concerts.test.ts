import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { bearer, send } from './helpers/http.js'
import { OPEN_QUEUE, TEST_ADMIN_TOKEN, activeToken, changeQueue, joinQueue } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

t.test("a token of concert 2's queue opens concert 2's pages and is 403 WRONG_CONCERT on concert 1's dates, seats, hold and payment", async (t) => {
  const { app } = await buildTestApp(t, OPEN_QUEUE)
  const base = await listen(app)
  const [one, two] = [(await send(base, 'GET', '/concerts/1')).body, (await send(base, 'GET', '/concerts/2')).body]
  const detailOf = { 1: one[0].concertDetailId as number, 2: two[0].concertDetailId as number }
  t.ok(two.length > 0 && !one.some((o: { concertDetailId: number }) => o.concertDetailId === detailOf[2]), 'concert 2 has dated options of its own')

  const userId = 5
  const token = await activeToken(base, userId, { concertId: 2 })
  const seat = (concert: 1 | 2) => ({ userId, concertDetailId: detailOf[concert], seatNo: 1 })
  const calls = (concert: 1 | 2): [string, string, Record<string, unknown>?][] => [
    ['GET', `/concert/reservation/days/${concert}`],
    ['GET', `/concert/seats/${detailOf[concert]}`],
    ['PATCH', '/concert/seat', seat(concert)],
    ['POST', '/concert/reservation/days', seat(concert)],
  ]
  for (const [method, path, body] of calls(1)) {
    const reply = await send(base, method, path, { body, headers: bearer(token) })
    t.same([reply.status, reply.body.code], [403, 'WRONG_CONCERT'], `${method} ${path} of concert 1`)
  }
  const answered = []
  for (const [method, path, body] of calls(2)) answered.push((await send(base, method, path, { body, headers: bearer(token) })).status)
  t.same(answered, [200, 200, 200, 200], "the same token opens concert 2's dates and seats, holds and pays there")

  const unknown = await joinQueue(base, userId, { concertId: 999 })
  t.same([unknown.status, unknown.body.code], [404, 'CONCERT_NOT_FOUND'], 'joining the queue of an unknown concert')
  const standing = await send(base, 'GET', '/concert/wait', { headers: bearer(token) })
  t.same([standing.status, standing.body.code], [404, 'NOT_IN_QUEUE'], "paying left concert 2's queue, which the token's status call reads")
})

t.test('two concerts admit independently, each up to its own MAX_ACTIVE; pausing one does not pause the other', async (t) => {
  const { app } = await buildTestApp(t, { MAX_ACTIVE: 1, ADMIT_BATCH: 1, ADMIT_INTERVAL_MS: 50, ADMIN_TOKEN: TEST_ADMIN_TOKEN })
  const base = await listen(app)
  const status = async (token: string) => (await send(base, 'GET', '/concert/wait', { headers: bearer(token) })).body.status
  const tokens: Record<string, string> = {}
  for (const concertId of [1, 2]) {
    for (const userId of [1, 2]) tokens[`${userId}@${concertId}`] = (await joinQueue(base, userId, { concertId })).body.token
  }
  await waitFor('user 1 admitted to both concerts', async () => (await status(tokens['1@1']!)) === 'ACTIVE' && (await status(tokens['1@2']!)) === 'ACTIVE')
  t.equal(await status(tokens['2@1']!), 'WAITING', 'concert 1 is full with one active')
  t.equal(await status(tokens['2@2']!), 'WAITING', 'concert 2 is full with one active')

  t.equal((await changeQueue(base, 1, { paused: true })).status, 200)
  for (const concertId of [1, 2]) t.equal((await send(base, 'DELETE', '/concert/wait', { headers: bearer(tokens[`1@${concertId}`]!) })).status, 204)
  await waitFor('user 2 admitted to concert 2', async () => (await status(tokens['2@2']!)) === 'ACTIVE')
  // A tick of concert 1 ran after its slot freed (a later tick time than the one read after), and admitted nobody.
  const lastTick = async () => Number(await app.redis.hget(app.queue.keys(1).concert, 'lastTick'))
  const freedAt = await lastTick()
  await waitFor('a later tick of the paused concert', async () => (await lastTick()) > freedAt + 50)
  t.equal(await status(tokens['2@1']!), 'WAITING', 'the paused concert admitted nobody')

  t.equal((await changeQueue(base, 1, { paused: false })).status, 200)
  await waitFor('user 2 admitted to concert 1 once it is resumed', async () => (await status(tokens['2@1']!)) === 'ACTIVE')
})
