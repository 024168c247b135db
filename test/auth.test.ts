import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { OPEN_QUEUE, activeToken, joinQueue } from './helpers/queue.js'
import { bearer, send } from './helpers/http.js'
import { jwtPart, signJwt } from './helpers/jwt.js'
import { waitFor } from './helpers/wait.js'
import { QUEUE_AUDIENCE } from '../src/plugins/auth.js'

t.test('only a genuine, unexpired queue token opens the booking pages, and only for its own user', async (t) => {
  const { app, config } = await buildTestApp(t, { ...OPEN_QUEUE, TOKEN_TTL_S: 2 })
  const base = await listen(app)
  const signedAt = Date.now()
  const token = await activeToken(base, 5)
  await activeToken(base, 6)
  const seats = (headers: Record<string, string>) => send(base, 'GET', '/concert/seats/1', { headers })
  const now = Math.floor(Date.now() / 1000)

  t.equal((await seats(bearer(token))).status, 200, 'the real token opens the booking pages')

  const refusals: [string, Record<string, string>, string][] = [
    ['no Authorization header', {}, 'TOKEN_MISSING'],
    ['an empty header', { authorization: ' ' }, 'TOKEN_MISSING'],
    ['garbage', bearer('not-a-token'), 'TOKEN_INVALID'],
    ['a valid token with trailing junk', bearer(`${token}!`), 'TOKEN_INVALID'],
    ['a valid token with padding', bearer(`${token}==`), 'TOKEN_INVALID'],
    ['a valid token followed by more words', { authorization: `Bearer ${token} extra` }, 'TOKEN_INVALID'],
    ['Bearer and nothing else', { authorization: 'Bearer' }, 'TOKEN_INVALID'],
    ['a bare user id in token mode', { authorization: '5' }, 'TOKEN_INVALID'],
    ['a token signed with another secret', bearer(signJwt({ sub: '5', iat: now, exp: now + 60 }, 'another-secret-another-secret-0000')), 'TOKEN_INVALID'],
    ['a tampered payload', bearer(token.replace(/\.[^.]+\./, `.${jwtPart({ sub: '6', iat: now, exp: now + 60 })}.`)), 'TOKEN_INVALID'],
    ['alg none', bearer(`${jwtPart({ alg: 'none', typ: 'JWT' })}.${jwtPart({ sub: '5' })}.`), 'TOKEN_INVALID'],
    ['a token without a user', bearer(signJwt({ iat: now, exp: now + 60 }, config.TOKEN_SECRET!)), 'TOKEN_INVALID'],
    ['an expired token', bearer(signJwt({ sub: '5', aud: QUEUE_AUDIENCE, iat: now - 120, exp: now - 60 }, config.TOKEN_SECRET!)), 'TOKEN_EXPIRED'],
  ]
  for (const [name, headers, code] of refusals) {
    const res = await seats(headers)
    t.equal(res.status, 401, `${name}: 401`)
    t.equal(res.body.code, code, `${name}: ${code}`)
  }

  const hold = await send(base, 'PATCH', '/concert/seat', { body: { userId: 6, concertDetailId: 1, seatNo: 9 }, headers: bearer(token) })
  t.equal(hold.status, 403, "user 5's token cannot hold a seat for user 6")
  t.equal(hold.body.code, 'USER_MISMATCH')
  const pay = await send(base, 'POST', '/concert/reservation/days', { body: { userId: 6, concertDetailId: 1, seatNo: 9 }, headers: bearer(token) })
  t.equal(pay.status, 403, "user 5's token cannot pay for user 6")
  t.equal(pay.body.code, 'USER_MISMATCH')

  // Its exp is whole seconds: the token lapses between TOKEN_TTL_S - 1 and TOKEN_TTL_S after signing.
  const expired = await waitFor('the token to stop opening the booking pages', async () => {
    const res = await seats(bearer(token))
    return res.status !== 200 && res
  }, { timeoutMs: (config.TOKEN_TTL_S + 3) * 1000, intervalMs: 100 })
  t.ok(Date.now() - signedAt >= (config.TOKEN_TTL_S - 1) * 1000, 'not before its lifetime was up')
  t.equal(expired.status, 401, 'a token past TOKEN_TTL_S is refused')
  t.equal(expired.body.code, 'TOKEN_EXPIRED')
})

t.test('AUTH_MODE=user-id accepts the bare user id the original scripts send', async (t) => {
  const { app } = await buildTestApp(t, { ...OPEN_QUEUE, AUTH_MODE: 'user-id' })
  const base = await listen(app)
  const joined = await joinQueue(base, 8, { body: { '@class': 'queueReq' } })
  t.equal(joined.status, 200)
  await activeToken(base, 8)
  const days = await send(base, 'GET', '/concert/reservation/days/1', { headers: { authorization: '8' } })
  t.equal(days.status, 200)
  const hold = await send(base, 'PATCH', '/concert/seat', { body: { userId: 8, concertDetailId: 1, seatNo: 3, '@class': 'concertSeat' }, headers: { authorization: '8' } })
  t.equal(hold.status, 200)
  const other = await send(base, 'PATCH', '/concert/seat', { body: { userId: 9, concertDetailId: 1, seatNo: 4 }, headers: { authorization: '8' } })
  t.equal(other.status, 403, 'the bare id still has to match the body')
  const notQueued = await send(base, 'GET', '/concert/seats/1', { headers: { authorization: '42' } })
  t.equal(notQueued.status, 403, 'a user the queue never admitted is refused')
  t.equal(notQueued.body.code, 'NOT_IN_QUEUE')
  const token = await send(base, 'GET', '/concert/seats/1', { headers: bearer(joined.body.token) })
  t.equal(token.status, 200, 'tokens keep working in user-id mode')
})
