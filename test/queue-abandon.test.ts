import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { bearer, send } from './helpers/http.js'
import { activeToken, joinQueue } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

t.test('a waiter who stops polling loses the place and is never admitted; an active user is dropped at ACTIVE_MAX_MS however active', async (t) => {
  const ACTIVE_MAX_MS = 2500
  const { app } = await buildTestApp(t, { MAX_ACTIVE: 1, ADMIT_BATCH: 1, ADMIT_INTERVAL_MS: 50, WAITING_TTL_MS: 1000, ACTIVE_MAX_MS, ACTIVE_TTL_MS: 60_000 })
  const base = await listen(app)
  const status = (token: string) => send(base, 'GET', '/concert/wait', { headers: bearer(token) })

  const activeUser = await activeToken(base, 1)
  const admittedAt = Number(await app.redis.zscore(app.queue.keys(1).admitted, '1'))
  // User 3 joins ahead of user 2, then goes silent; user 2 keeps polling.
  const quitter = (await joinQueue(base, 3)).body.token
  const poller = (await joinQueue(base, 2)).body.token
  t.equal((await status(quitter)).body.position, 1, 'the quitter is first in line')

  // User 1 keeps using the booking pages, each call sliding the 60 s idle expiry, until refused.
  let refused: { status: number; code: string; at: number } | undefined
  let pollerAdmitted = false
  await waitFor(
    'user 1 to lose the slot and user 2 to be admitted',
    async () => {
      if (!refused) {
        const days = await send(base, 'GET', '/concert/reservation/days/1', { headers: bearer(activeUser) })
        if (days.status !== 200) refused = { status: days.status, code: days.body.code, at: Date.now() }
      }
      pollerAdmitted ||= (await status(poller)).body.status === 'ACTIVE'
      return refused && pollerAdmitted
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  )
  t.match(refused, { status: 403, code: 'NOT_IN_QUEUE' }, 'the active user was refused at last')
  t.ok(refused!.at >= admittedAt + ACTIVE_MAX_MS - 50, `not before ACTIVE_MAX_MS after admission (${refused!.at - admittedAt} ms)`)
  t.equal(await app.redis.zscore(app.queue.keys(1).admitted, '3'), null, 'the quitter, though first in line, was never admitted')
  const gone = await status(quitter)
  t.same([gone.status, gone.body.code], [404, 'NOT_IN_QUEUE'], 'and has no place left')
  t.equal(Number(await app.redis.get(app.queue.keys(1).admissions)), 2, 'two admissions: user 1, then user 2')
})
