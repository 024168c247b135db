import t from 'tap'
import { sql } from 'kysely'
import { buildTestApp, listen } from './helpers/app.js'
import { send } from './helpers/http.js'
import { ledgerMismatches } from './helpers/invariants.js'

const charge = (base: string, key: string) => send(base, 'PATCH', '/point', { body: { userId: 3, charge: 10 }, headers: { 'idempotency-key': key } })

t.test('Idempotency-Key is compared byte for byte: keys differing in case are two charges', async (t) => {
  const { app, db } = await buildTestApp(t)
  const base = await listen(app)
  const lower = await charge(base, 'key-abc')
  const upper = await charge(base, 'KEY-ABC')
  const retry = await charge(base, 'key-abc')
  t.same([lower.status, upper.status, retry.status], [200, 200, 200])
  t.same([lower.body.point, upper.body.point], [100_010, 100_020], 'each key charged once')
  t.same(retry.body, lower.body, 'the retry of the first key gets its first answer')
  const history = await db.selectFrom('point_history').select('amount').where('user_id', '=', 3).execute()
  t.equal(history.length, 2, 'two history rows')
  t.same(await ledgerMismatches(db), [])
})

t.test('keys older than IDEMPOTENCY_TTL_H are swept; younger ones stay', async (t) => {
  const { app, db } = await buildTestApp(t, { IDEMPOTENCY_TTL_H: 24 })
  const base = await listen(app)
  for (const key of ['old-1', 'old-2', 'young']) t.equal((await charge(base, key)).status, 200)
  await db
    .updateTable('idempotency_keys')
    .set({ created_at: sql<Date>`NOW(3) - INTERVAL 25 HOUR` } as never)
    .where('idem_key', 'in', ['old-1', 'old-2'])
    .execute()
  t.equal(await app.sweepIdempotencyKeys(), 2, 'the two expired keys are deleted')
  const left = await db.selectFrom('idempotency_keys').select('idem_key').execute()
  t.same(left.map((row) => row.idem_key), ['young'])
  t.equal(await app.sweepIdempotencyKeys(), 0, 'a second sweep finds nothing')
})
