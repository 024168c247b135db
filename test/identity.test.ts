import t from 'tap'
import { createServer } from 'node:http'
import { generateKeyPairSync } from 'node:crypto'
import { buildTestApp, listen } from './helpers/app.js'
import { OPEN_QUEUE, activeToken } from './helpers/queue.js'
import { bearer, send } from './helpers/http.js'
import { TEST_IDENTITY_SECRET, identityToken, jwtPart, signJwt } from './helpers/jwt.js'
import { isErrorResponse } from './helpers/error-shape.js'

const now = () => Math.floor(Date.now() / 1000)

/** The three calls that act for a user, as user 5 would make them, with `authorization` as given. */
const userCalls = (base: string, headers: Record<string, string>) => [
  ['GET /point/5', () => send(base, 'GET', '/point/5', { headers, identity: false })],
  ['PATCH /point', () => send(base, 'PATCH', '/point', { body: { userId: 5, charge: 10 }, headers, identity: false })],
  ['POST /concert/wait', () => send(base, 'POST', '/concert/wait', { body: { userId: 5 }, headers, identity: false })],
] as const

t.test("every user call needs that user's genuine, unexpired identity token", async (t) => {
  const { app, db } = await buildTestApp(t)
  const base = await listen(app)
  const refusals: [string, Record<string, string>, number, string][] = [
    ['no credential', {}, 401, 'IDENTITY_MISSING'],
    ['garbage', bearer('not-a-token'), 401, 'IDENTITY_INVALID'],
    ['a token forged with another secret', bearer(identityToken(5, {}, 'forged-forged-forged-forged-forged-0000')), 401, 'IDENTITY_INVALID'],
    ['alg none', bearer(`${jwtPart({ alg: 'none', typ: 'JWT' })}.${jwtPart({ sub: '5', exp: now() + 60 })}.`), 401, 'IDENTITY_INVALID'],
    ['an expired token', bearer(identityToken(5, { iat: now() - 120, exp: now() - 60 })), 401, 'IDENTITY_EXPIRED'],
    ['a token without a user', bearer(signJwt({ iat: now(), exp: now() + 60 }, TEST_IDENTITY_SECRET)), 401, 'IDENTITY_INVALID'],
    ['a bare user id', { authorization: '5' }, 401, 'IDENTITY_INVALID'],
    ["another user's token", bearer(identityToken(6)), 403, 'IDENTITY_MISMATCH'],
  ]
  for (const [name, headers, status, code] of refusals) {
    for (const [call, make] of userCalls(base, headers)) {
      const res = await make()
      t.equal(res.status, status, `${call} with ${name}: ${status}`)
      t.ok(isErrorResponse(status, res.body) && res.body.code === code, `${call} with ${name}: ${code}`)
    }
  }
  const balance = await db.selectFrom('users').select('point').where('id', '=', 5).executeTakeFirstOrThrow()
  const history = await db.selectFrom('point_history').select('id').where('user_id', '=', 5).execute()
  t.same([Number(balance.point), history.length], [100_000, 0], 'no refused charge reached the balance')
  t.equal(await app.queue.heartbeat(5, 1).then((standing) => standing.status), 'NONE', 'no refused join reached the queue')

  for (const [call, make] of userCalls(base, bearer(identityToken(5)))) {
    t.equal((await make()).status, 200, `${call} with user 5's own token: 200`)
  }
})

t.test('the stranger of the report can no longer join as, leave, hold or pay for user 8', async (t) => {
  const { app } = await buildTestApp(t, OPEN_QUEUE)
  const base = await listen(app)
  const victimToken = await activeToken(base, 8)
  const stranger = bearer(identityToken(99))
  const seat = { userId: 8, concertDetailId: 1, seatNo: 3 }

  const joined = await send(base, 'POST', '/concert/wait', { body: { userId: 8 }, identity: false })
  t.equal(joined.status, 401, 'joining as user 8 with no credential: 401')
  t.notOk(joined.body.token, 'and no queue token')
  const joinedAs = await send(base, 'POST', '/concert/wait', { body: { userId: 8 }, headers: stranger })
  t.equal(joinedAs.status, 403, "joining as user 8 with one's own identity: 403")
  // The booking calls take a queue token, which only user 8's join hands out.
  for (const [what, headers] of [['an identity token', stranger], ['a bare id', { authorization: '8' }]] as const) {
    t.equal((await send(base, 'DELETE', '/concert/wait', { headers })).status, 401, `leaving with ${what}: 401`)
    t.equal((await send(base, 'PATCH', '/concert/seat', { body: seat, headers })).status, 401, `holding with ${what}: 401`)
    t.equal((await send(base, 'POST', '/concert/reservation/days', { body: seat, headers })).status, 401, `paying with ${what}: 401`)
  }
  t.equal((await app.queue.heartbeat(8, 1)).status, 'ACTIVE', 'user 8 is still in the queue')
  t.equal((await send(base, 'PATCH', '/concert/seat', { body: seat, headers: bearer(victimToken) })).status, 200, 'and holds with its own token')
})

t.test('an identity token is not a queue token, nor a queue token an identity token', async (t) => {
  // One secret for both, so only the audience tells them apart.
  const { app } = await buildTestApp(t, { ...OPEN_QUEUE, TOKEN_SECRET: TEST_IDENTITY_SECRET })
  const base = await listen(app)
  const queueToken = await activeToken(base, 5)
  const asIdentity = await send(base, 'GET', '/point/5', { headers: bearer(queueToken) })
  t.equal(asIdentity.status, 401, 'a queue token does not read a balance')
  t.equal(asIdentity.body.code, 'IDENTITY_INVALID')
  const asQueue = await send(base, 'GET', '/concert/seats/1', { headers: bearer(identityToken(5)) })
  t.equal(asQueue.status, 401, 'an identity token does not open the booking pages')
  t.equal(asQueue.body.code, 'TOKEN_INVALID')
})

t.test('identity tokens signed with a key pair: a PEM public key, or a JWKS fetched by kid', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const claims = (userId: number) => ({ sub: String(userId), iat: now(), exp: now() + 60 })

  t.test('IDENTITY_PUBLIC_KEY', async (t) => {
    const publicKey = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
    const { app } = await buildTestApp(t, { IDENTITY_JWT_SECRET: '', IDENTITY_PUBLIC_KEY: publicKey })
    const base = await listen(app)
    const read = (token: string) => send(base, 'GET', '/point/5', { headers: bearer(token) })
    t.equal((await read(signJwt(claims(5), rsa.privateKey, { alg: 'RS256', typ: 'JWT' }))).status, 200, 'signed with the private key: 200')
    t.equal((await read(signJwt(claims(5), stranger.privateKey, { alg: 'RS256', typ: 'JWT' }))).status, 401, 'another key: 401')
    t.equal((await read(identityToken(5))).status, 401, 'an HS256 token: 401')
    // The HS256-with-the-public-key confusion: the PEM text used as an HMAC secret.
    t.equal((await read(identityToken(5, {}, publicKey))).status, 401, 'HS256 keyed with the public key: 401')
  })

  t.test('IDENTITY_JWKS_URL', async (t) => {
    const keys = [
      { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ]
    let fetches = 0
    const jwks = createServer((request, response) => {
      fetches++
      if (request.url !== '/keys/jwks.json') return response.writeHead(404).end()
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }))
    })
    await new Promise<void>((done) => jwks.listen(0, '127.0.0.1', done))
    t.teardown(() => new Promise<void>((done) => jwks.close(() => done())))
    const { port } = jwks.address() as { port: number }
    const { app } = await buildTestApp(t, { IDENTITY_JWT_SECRET: '', IDENTITY_JWKS_URL: `http://127.0.0.1:${port}/keys/jwks.json` })
    const base = await listen(app)
    const read = (userId: number, token: string) => send(base, 'GET', `/point/${userId}`, { headers: bearer(token) })

    t.equal((await read(5, signJwt(claims(5), rsa.privateKey, { alg: 'RS256', kid: 'rsa-1' }))).status, 200, 'RS256 by kid: 200')
    t.equal((await read(6, signJwt(claims(6), ec.privateKey, { alg: 'ES256', kid: 'ec-1' }))).status, 200, 'ES256 by kid: 200')
    t.equal((await read(5, signJwt(claims(5), stranger.privateKey, { alg: 'RS256', kid: 'rsa-1' }))).status, 401, 'a known kid, another key: 401')
    t.equal((await read(5, signJwt(claims(5), stranger.privateKey, { alg: 'RS256', kid: 'nobody' }))).status, 401, 'an unknown kid: 401')
    t.equal((await read(5, identityToken(5))).status, 401, 'an HS256 token: 401')
    t.ok(fetches >= 1, `the key set was fetched from the JWKS server (${fetches} times)`)
  })
})

t.test('AUTH_MODE=user-id needs no identity: the report scripts join and charge as the user they name', async (t) => {
  const { app } = await buildTestApp(t, { AUTH_MODE: 'user-id' })
  const base = await listen(app)
  t.equal((await send(base, 'POST', '/concert/wait', { body: { userId: 8 }, identity: false })).status, 200)
  t.equal((await send(base, 'PATCH', '/point', { body: { userId: 8, charge: 5 }, identity: false })).status, 200)
  t.equal((await send(base, 'GET', '/point/8', { identity: false })).status, 200)
})
