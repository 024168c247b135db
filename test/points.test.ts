import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { ledgerMismatches } from './helpers/invariants.js'
import { send } from './helpers/http.js'
import { isErrorResponse } from './helpers/error-shape.js'

t.test('balances and charges: reads, refusals, concurrent and repeated charges, the balance cap, the ledger', async (t) => {
  const { app, db, config } = await buildTestApp(t, { SEED_POINTS: 1000, MAX_CHARGE: 100000 })
  const base = await listen(app)
  const historyCount = async (userId: number) =>
    Number((await db.selectFrom('point_history').select(({ fn }) => fn.countAll().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow()).n)

  t.test('GET /point/:userId answers the balance', async (t) => {
    const res = await send(base, 'GET', '/point/7')
    t.equal(res.status, 200)
    t.same(res.body, { userId: 7, point: 1000 })
  })

  t.test('an unknown user is 404 with the error shape', async (t) => {
    const res = await send(base, 'GET', '/point/199999')
    t.equal(res.status, 404)
    t.same(res.body, { statusCode: 404, error: 'Not Found', message: 'User 199999 not found', code: 'USER_NOT_FOUND' })
  })

  t.test('malformed and out-of-range ids are 400, never 500', async (t) => {
    for (const id of ['abc', '0', '-1', '1.5', '99999999999', '1e3x', '%00']) {
      const res = await send(base, 'GET', `/point/${id}`)
      t.equal(res.status, 400, `id ${id}`)
      t.equal(res.body.code, 'VALIDATION_FAILED', `id ${id}`)
      t.ok(isErrorResponse(400, res.body), `id ${id}: the error shape`)
    }
  })

  t.test('PATCH /point charges, answers the new balance and writes one history row', async (t) => {
    const res = await send(base, 'PATCH', '/point', { body: { userId: 2, charge: 250, '@class': 'pointReq' } })
    t.equal(res.status, 200)
    t.same(res.body, { userId: 2, point: 1250 })
    const history = await db.selectFrom('point_history').selectAll().where('user_id', '=', 2).execute()
    t.equal(history.length, 1)
    t.match(history[0], { kind: 'CHARGE', amount: 250, balance_after: 1250 })
  })

  t.test('charging an unknown user is 404 and writes nothing', async (t) => {
    const res = await send(base, 'PATCH', '/point', { body: { userId: 150000, charge: 10 } })
    t.equal(res.status, 404)
    t.equal(res.body.code, 'USER_NOT_FOUND')
    t.equal(await historyCount(150000), 0)
  })

  t.test('a bad charge is 400 (or 415) and changes nothing', async (t) => {
    const bad: [string, { body?: unknown; raw?: string; headers?: Record<string, string> }, number, string][] = [
      ['negative', { body: { userId: 3, charge: -100 } }, 400, 'VALIDATION_FAILED'],
      ['zero', { body: { userId: 3, charge: 0 } }, 400, 'VALIDATION_FAILED'],
      ['fractional', { body: { userId: 3, charge: 10.5 } }, 400, 'VALIDATION_FAILED'],
      ['a string', { body: { userId: 3, charge: '100' } }, 400, 'VALIDATION_FAILED'],
      ['over the cap', { body: { userId: 3, charge: config.MAX_CHARGE + 1 } }, 400, 'VALIDATION_FAILED'],
      ['1e30', { raw: '{"userId":3,"charge":1e30}', headers: { 'content-type': 'application/json' } }, 400, 'VALIDATION_FAILED'],
      ['null', { body: { userId: 3, charge: null } }, 400, 'VALIDATION_FAILED'],
      ['missing charge', { body: { userId: 3 } }, 400, 'VALIDATION_FAILED'],
      ['missing user', { body: { charge: 10 } }, 400, 'VALIDATION_FAILED'],
      ['user id a string', { body: { userId: '3', charge: 10 } }, 400, 'VALIDATION_FAILED'],
      ['an extra field', { body: { userId: 3, charge: 10, admin: true } }, 400, 'VALIDATION_FAILED'],
      ['an array body', { body: [{ userId: 3, charge: 10 }] }, 400, 'VALIDATION_FAILED'],
      ['malformed JSON', { raw: '{"userId":3,', headers: { 'content-type': 'application/json' } }, 400, 'INVALID_JSON'],
      ['an empty JSON body', { raw: '', headers: { 'content-type': 'application/json' } }, 400, 'INVALID_JSON'],
      ['__proto__ key', { raw: '{"userId":3,"charge":10,"__proto__":{"x":1}}', headers: { 'content-type': 'application/json' } }, 400, 'INVALID_JSON'],
      ['text/plain', { raw: 'userId=3&charge=10', headers: { 'content-type': 'text/plain' } }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ]
    for (const [name, request, status, code] of bad) {
      const res = await send(base, 'PATCH', '/point', request)
      t.equal(res.status, status, `${name}: status`)
      t.equal(res.body.code, code, `${name}: code`)
      t.type(res.body.message, 'string', `${name}: message`)
      t.ok(isErrorResponse(status, res.body), `${name}: the error shape`)
    }
    t.same((await send(base, 'GET', '/point/3')).body, { userId: 3, point: 1000 }, 'balance unchanged')
    t.equal(await historyCount(3), 0, 'no history row')
  })

  t.test('200 concurrent charges of one user add up exactly', async (t) => {
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) => send(base, 'PATCH', '/point', { body: { userId: 4, charge: i + 1 } })),
    )
    t.same(
      responses.filter((r) => r.status !== 200).map((r) => r.body),
      [],
      'every charge succeeded',
    )
    const expected = 1000 + (200 * 201) / 2
    t.same((await send(base, 'GET', '/point/4')).body, { userId: 4, point: expected })
    t.equal(await historyCount(4), 200)
    const balancesSeen = new Set(responses.map((r) => r.body.point))
    t.equal(balancesSeen.size, 200, 'each charge saw its own balance')
    t.ok(balancesSeen.has(expected), 'the last charge answered the final balance')
  })

  t.test('50 concurrent retries of one Idempotency-Key charge once', async (t) => {
    const headers = { 'idempotency-key': 'charge-5-once' }
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => send(base, 'PATCH', '/point', { body: { userId: 5, charge: 300 }, headers })),
    )
    t.same([...new Set(responses.map((r) => r.status))], [200])
    t.same([...new Set(responses.map((r) => JSON.stringify(r.body)))], [JSON.stringify({ userId: 5, point: 1300 })])
    t.equal(await historyCount(5), 1)
    const later = await send(base, 'PATCH', '/point', { body: { userId: 5, charge: 300 }, headers })
    t.same(later.body, { userId: 5, point: 1300 }, 'a later retry gets the first answer')
  })

  t.test('an Idempotency-Key reused for a different request is 422', async (t) => {
    const headers = { 'idempotency-key': 'charge-6' }
    t.equal((await send(base, 'PATCH', '/point', { body: { userId: 6, charge: 10 }, headers })).status, 200)
    const reused = await send(base, 'PATCH', '/point', { body: { userId: 6, charge: 20 }, headers })
    t.equal(reused.status, 422)
    t.equal(reused.body.code, 'IDEMPOTENCY_KEY_REUSED')
    t.same((await send(base, 'GET', '/point/6')).body, { userId: 6, point: 1010 })
  })

  t.test('a balance never passes MAX_BALANCE', async (t) => {
    const nearlyFull = config.MAX_BALANCE - 1
    await db.updateTable('users').set({ point: nearlyFull, starting_point: nearlyFull }).where('id', '=', 9).execute()
    const over = await send(base, 'PATCH', '/point', { body: { userId: 9, charge: 2 } })
    t.equal(over.status, 409)
    t.equal(over.body.code, 'BALANCE_LIMIT_EXCEEDED')
    t.same((await send(base, 'GET', '/point/9')).body, { userId: 9, point: nearlyFull })
  })

  t.test('ledger: every balance equals its starting points plus its history', async (t) => {
    t.same(await ledgerMismatches(db), [])
  })
})
