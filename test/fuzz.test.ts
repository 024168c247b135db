import t from 'tap'
import fc from 'fast-check'
import type { InjectOptions } from 'fastify'
import { MAX_ID } from '../src/shared/schemas.js'
import { buildTestApp } from './helpers/app.js'
import { bearer } from './helpers/http.js'
import { joinRequest } from './helpers/queue.js'
import { identityToken, signJwt } from './helpers/jwt.js'
import { waitFor } from './helpers/wait.js'
import { isErrorResponse } from './helpers/error-shape.js'

// Thousands of hostile requests across every route. Each generated request to a route that can
// change something carries at least one defect (bad types, out-of-range or fractional numbers,
// unknown or prototype-polluting keys, duplicated keys, malformed or oversized JSON, a wrong
// content type, a bad or forged token, someone else's token, a seat that cannot be booked...),
// so the API must refuse every one. The property: never a 5xx, every refusal in the one error
// shape, and afterwards balances, seats, reservations and the queue exactly as before.

const SEEDED_USERS = 20
const MAX_CHARGE = 1_000_000
const BODY_LIMIT = 16_384
const SEATS = 50

const { app, db, config } = await buildTestApp(t, {
  SEED_USERS: SEEDED_USERS,
  SEATS_PER_DETAIL: SEATS,
  MAX_CHARGE,
  BODY_LIMIT,
  // Two active slots, both taken, and nobody's slot or hold expiring during the run: the
  // admitter ticks all along but has nothing to change.
  MAX_ACTIVE: 2,
  ADMIT_BATCH: 2,
  ADMIT_INTERVAL_MS: 50,
  ACTIVE_TTL_MS: 3_600_000,
  HOLD_TTL_MS: 3_600_000,
  // Per-user limits would answer most of the run with 429 before the handlers are reached.
  RATE_LIMIT_WAIT_PER_MIN: 0,
  RATE_LIMIT_PAY_PER_MIN: 0,
})
const secret = config.TOKEN_SECRET!

async function inject(options: InjectOptions) {
  const res = await app.inject(options)
  if (res.statusCode >= 300) throw new Error(`set-up call ${options.method} ${options.url} failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

const waitForQueue = (active: number, waiting: number) =>
  waitFor(`the queue to hold ${active} active and ${waiting} waiting`, async () => {
    const sizes = await app.queue.sizes()
    return sizes.active === active && sizes.waiting === waiting
  })

// The state the requests are thrown at: user 2 bought seat 1/2 and left the queue; user 1 is
// active and holds seat 1/1; user 3 is active; users 4 and 5 wait.
const tokens: Record<number, string> = {}
const join = async (userId: number) => {
  const { method, path, options } = joinRequest(userId)
  tokens[userId] = (await inject({ method: method as 'POST', url: path, headers: options.headers, payload: options.body })).token
}
for (const userId of [1, 2]) await join(userId)
await waitForQueue(2, 0)
const identityOf = (userId: number) => bearer(identityToken(userId))
const asUser = (userId: number) => bearer(tokens[userId]!)
await inject({ method: 'PATCH', url: '/concert/seat', headers: asUser(2), payload: { userId: 2, concertDetailId: 1, seatNo: 2 } })
await inject({ method: 'POST', url: '/concert/reservation/days', headers: asUser(2), payload: { userId: 2, concertDetailId: 1, seatNo: 2 } })
await inject({ method: 'PATCH', url: '/concert/seat', headers: asUser(1), payload: { userId: 1, concertDetailId: 1, seatNo: 1 } })
await join(3)
await waitForQueue(2, 0)
for (const userId of [4, 5]) await join(userId)
await waitForQueue(2, 2)

/** Everything a request could change, to compare before and after. */
async function snapshot() {
  const count = (table: 'payments' | 'point_history' | 'idempotency_keys') =>
    db.selectFrom(table).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  const key = app.queue.keys(1)
  const [balances, seats, reservations, payments, history, idempotencyKeys, waiting, active, arrivals, admissions] = await Promise.all([
    db.selectFrom('users').select(['id', 'point']).orderBy('id').execute(),
    db.selectFrom('seats').select(['id', 'status', 'user_id', 'reservation_id', 'held_until']).orderBy('id').execute(),
    db.selectFrom('reservations').selectAll().orderBy('id').execute(),
    count('payments'),
    count('point_history'),
    count('idempotency_keys'),
    app.redis.zrange(key.waiting, 0, -1),
    app.redis.zrange(key.active, 0, -1),
    app.redis.get(key.arrivals),
    app.redis.get(key.admissions),
  ])
  // Members, not order: an active user's protected call slides its expiry, which is its score.
  return { balances, seats, reservations, payments, history, idempotencyKeys, queue: { waiting: waiting.sort(), active: active.sort(), arrivals, admissions } }
}
const before = await snapshot()

// ---- values -------------------------------------------------------------------------------

const now = Math.floor(Date.now() / 1000)
const json = (value: unknown) => JSON.stringify(value)

/** JSON text that is not an integer in [min, max]: wrong types, out of range, fractional, malformed. */
const notAnIntegerIn = (min: number, max: number) =>
  fc.oneof(
    fc.integer({ min: -(2 ** 53), max: min - 1 }).map(json),
    fc.oneof(fc.integer({ min: max + 1, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(2 ** 53 + 2, 1e21, 1e308, -1e308)).map(json),
    fc.double({ min, max, noNaN: true }).filter((x) => !Number.isInteger(x)).map(json),
    fc.constantFrom('1e400', '-1e400', 'NaN', 'Infinity', '-Infinity', '0x10', '01', '.5', '+1', '1.', '-', '1_000'),
    fc.string({ unit: 'grapheme', maxLength: 12 }).map(json),
    fc.constantFrom('"1"', '" 1"', '"1e2"', 'true', 'false', 'null', '[]', '[1]', '{}', '{"$gt":0}', '{"__proto__":1}'),
    fc.jsonValue({ maxDepth: 2 }).filter((value) => typeof value !== 'number').map(json),
    fc.integer({ min: 1, max: 5000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
  )

const notAClassTag = fc.oneof(
  fc.string({ minLength: 201, maxLength: 260 }).map(json),
  fc.jsonValue({ maxDepth: 2 }).filter((value) => typeof value !== 'string').map(json),
)

const FORBIDDEN_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'isAdmin', 'point', 'status', 'id', '']

/** Credentials that authenticate no one in the line: missing, malformed, forged, expired, or of someone not queued. */
const refusedCredential = fc.oneof(
  fc.constant({}),
  fc.constantFrom(
    { authorization: '' },
    { authorization: 'Bearer' },
    { authorization: 'Bearer ' },
    { authorization: 'Basic dXNlcjpwYXNz' },
    { authorization: 'Bearer a.b.c' },
    { authorization: '1' },
    bearer(`${tokens[1]}x`),
    bearer(`${tokens[1]!.split('.').slice(0, 2).join('.')}.`),
    bearer(signJwt({ sub: '1', iat: now, exp: now + 600 }, 'not-the-secret-not-the-secret-0000')),
    bearer(signJwt({ sub: '1', iat: now - 7200, exp: now - 3600 }, secret)),
    bearer(signJwt({ sub: '1' }, secret, { alg: 'none', typ: 'JWT' })),
    bearer(signJwt({ sub: 1, iat: now, exp: now + 600 }, secret)),
    bearer(signJwt({ sub: '0', iat: now, exp: now + 600 }, secret)),
    bearer(signJwt({ sub: '1.5', iat: now, exp: now + 600 }, secret)),
    bearer(signJwt({ sub: '1 ', iat: now, exp: now + 600 }, secret)),
    bearer(signJwt({ iat: now, exp: now + 600 }, secret)),
    bearer(signJwt({ sub: String(MAX_ID), iat: now, exp: now + 600 }, secret)),
    asUser(2),
  ),
  fc.string({ unit: 'grapheme-ascii', maxLength: 300 }).map(bearer),
)

/**
 * For a call made as user 1 (or, joining, user 6): every refused credential, the valid queue
 * tokens of other people in the line, and other users' identity tokens.
 */
const notUser1 = fc.oneof(refusedCredential, fc.constantFrom(asUser(3), asUser(4), { authorization: tokens[3]! }, identityOf(3), identityOf(7)))

const badIdempotencyKey = fc.oneof(
  fc.constantFrom('', ' ', 'has space', 'tab\tkey', 'caf\u00e9', 'x'.repeat(129)),
  fc.string({ unit: 'grapheme-ascii', minLength: 129, maxLength: 200 }),
)

// ---- requests -----------------------------------------------------------------------------

interface Case {
  route: string
  method: InjectOptions['method']
  url: string
  headers: Record<string, string>
  payload?: string
  /** The request carries a defect: it must be refused with a 4xx. */
  mustRefuse: boolean
}

type Entries = [key: string, jsonText: string][]

interface Field {
  name: string
  hostile: fc.Arbitrary<string>
}

type BodyDefect =
  | { kind: 'set' | 'duplicate'; field: string; value: string }
  | { kind: 'drop'; field: string }
  | { kind: 'extra'; key: string; value: string }
  | { kind: 'semantic'; changes: Entries }
type TextDefect = 'not-object' | 'colon' | 'quotes' | 'trailing-comma' | 'truncate' | 'garbage' | 'oversize' | 'empty'
type HeaderDefect =
  | { kind: 'content-type'; value: string | undefined }
  | { kind: 'content-length'; value: string }
  | { kind: 'credential'; headers: Record<string, string> }
  | { kind: 'idempotency-key'; value: string }
type Defect = BodyDefect | { kind: 'text'; text: TextDefect; cut: number } | HeaderDefect

const textDefects: TextDefect[] = ['not-object', 'colon', 'quotes', 'trailing-comma', 'truncate', 'garbage', 'oversize', 'empty']

function serialize(entries: Entries, textDefects: { text: TextDefect; cut: number }[]): string {
  let text = `{${entries.map(([key, value]) => `${json(key)}:${value}`).join(',')}}`
  const has = (name: TextDefect) => textDefects.find((d) => d.text === name)
  // A fixed order, so that no defect can undo another: a truncated object is never valid JSON,
  // unless garbage such as '}' completes it again, so a truncated text gets no garbage.
  if (has('not-object')) text = ['[]', '[{"userId":1}]', '"{}"', '1', 'true', 'null'][has('not-object')!.cut % 6]!
  if (has('colon')) text = text.replace(':', '=')
  if (has('quotes')) text = text.replaceAll('"', "'")
  if (has('trailing-comma')) text = text.replace(/}$/, ',}')
  if (has('truncate') && text.length > 1) text = text.slice(0, 1 + (has('truncate')!.cut % (text.length - 1)))
  else if (has('garbage')) text += ['x', '}', ',', ']', '\u0000', ' true', '{}'][has('garbage')!.cut % 7]
  if (has('empty')) text = ''
  if (has('oversize')) text += ' '.repeat(BODY_LIMIT + 1 + (has('oversize')!.cut % 1000))
  return text
}

interface BodyRoute {
  route: string
  method: 'POST' | 'PATCH'
  url: string
  /** A valid body: the defects alone make the request one to refuse. */
  template: Entries
  fields: Field[]
  /** Valid values that still cannot succeed (unknown user, a seat that is not free...). */
  semantic: fc.Arbitrary<Entries>
  /** The credential that matches the template (protected routes). */
  credential?: Record<string, string>
  idempotent: boolean
}

const userField: Field = { name: 'userId', hostile: notAnIntegerIn(1, MAX_ID) }
const seatFields: Field[] = [userField, { name: 'concertDetailId', hostile: notAnIntegerIn(1, MAX_ID) }, { name: 'seatNo', hostile: notAnIntegerIn(1, 1_000_000) }]
const unknownUser = fc.integer({ min: SEEDED_USERS + 1, max: MAX_ID }).map((id): Entries => [['userId', json(id)]])
const missingSeat = fc.oneof(
  fc.integer({ min: 5, max: MAX_ID }).map((id): Entries => [['concertDetailId', json(id)]]),
  fc.integer({ min: SEATS + 1, max: 1_000_000 }).map((no): Entries => [['seatNo', json(no)]]),
)

const bodyRoutes: BodyRoute[] = [
  {
    route: 'PATCH /point',
    method: 'PATCH',
    url: '/point',
    template: [['userId', '1'], ['charge', '100']],
    fields: [userField, { name: 'charge', hostile: notAnIntegerIn(1, MAX_CHARGE) }],
    semantic: unknownUser,
    credential: identityOf(1),
    idempotent: true,
  },
  {
    route: 'POST /concert/wait',
    method: 'POST',
    url: '/concert/wait',
    template: [['userId', '6']],
    fields: [userField],
    semantic: unknownUser,
    credential: identityOf(6),
    idempotent: false,
  },
  {
    route: 'PATCH /concert/seat',
    method: 'PATCH',
    url: '/concert/seat',
    template: [['userId', '1'], ['concertDetailId', '2'], ['seatNo', '7']],
    fields: seatFields,
    // The seat user 2 bought, or a seat that does not exist.
    semantic: fc.oneof(fc.constant<Entries>([['concertDetailId', '1'], ['seatNo', '2']]), missingSeat),
    credential: asUser(1),
    idempotent: false,
  },
  {
    route: 'POST /concert/reservation/days',
    method: 'POST',
    url: '/concert/reservation/days',
    // User 1 holds seat 1/1: this body would pay for it.
    template: [['userId', '1'], ['concertDetailId', '1'], ['seatNo', '1']],
    fields: seatFields,
    // A seat user 1 does not hold.
    semantic: fc.oneof(fc.integer({ min: 2, max: SEATS }).map((no): Entries => [['seatNo', json(no)]]), missingSeat),
    credential: asUser(1),
    idempotent: true,
  },
]

function bodyCase(spec: BodyRoute): fc.Arbitrary<Case> {
  const fieldNames = spec.fields.map((f) => f.name)
  const defect: fc.Arbitrary<Defect> = fc.oneof(
    fc.constantFrom(...spec.fields).chain((f) => f.hostile.map((value) => ({ kind: 'set' as const, field: f.name, value }))),
    fc.constantFrom(...spec.fields).chain((f) => f.hostile.map((value) => ({ kind: 'duplicate' as const, field: f.name, value }))),
    fc.constantFrom(...fieldNames).map((field) => ({ kind: 'drop' as const, field })),
    fc
      .record({
        key: fc.oneof(fc.constantFrom(...FORBIDDEN_KEYS, 'charge', 'seatNo', 'concertDetailId'), fc.string({ unit: 'grapheme', maxLength: 10 })),
        value: fc.oneof(fc.jsonValue({ maxDepth: 2 }).map(json), fc.constant('{"prototype":{"polluted":true}}'), fc.constant('{"polluted":true}')),
      })
      .filter(({ key }) => !fieldNames.includes(key) && key !== '@class')
      .map(({ key, value }) => ({ kind: 'extra' as const, key, value })),
    notAClassTag.map((value) => ({ kind: 'extra' as const, key: '@class', value })),
    spec.semantic.map((changes) => ({ kind: 'semantic' as const, changes })),
    fc.record({ text: fc.constantFrom(...textDefects), cut: fc.nat() }).map((d) => ({ kind: 'text' as const, ...d })),
    fc
      .constantFrom(undefined, 'text/plain', 'text/html', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/jsonx', 'json')
      .map((value) => ({ kind: 'content-type' as const, value })),
    // Lengths that disagree with the body (Node's HTTP parser already refuses non-numeric ones).
    fc.constantFrom('0', '1', '5', '99999999').map((value) => ({ kind: 'content-length' as const, value })),
    ...(spec.credential ? [notUser1.map((headers) => ({ kind: 'credential' as const, headers }))] : []),
    ...(spec.idempotent ? [badIdempotencyKey.map((value) => ({ kind: 'idempotency-key' as const, value }))] : []),
  )
  return fc
    .record({
      defects: fc.array(defect, { minLength: 1, maxLength: 3 }),
      classTag: fc.option(fc.string({ maxLength: 40 }).map(json), { nil: undefined }),
      idempotencyKey: fc.option(fc.stringMatching(/^[!-~]{1,40}$/), { nil: undefined }),
      // Variations that alone are no defect: JSON media type spellings, headers sent twice (HTTP keeps the first).
      jsonType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8', 'application/json; charset=latin1', 'application/json; charset=utf-16'),
      contentTypeTwice: fc.boolean(),
      credentialTwice: fc.boolean(),
      query: fc.option(fc.constantFrom('?__proto__[x]=1', '?constructor[prototype][x]=1', '?userId=2', '?a=%ZZ', '?' + 'q'.repeat(2000)), { nil: undefined }),
    })
    .map(({ defects, classTag, idempotencyKey, jsonType, contentTypeTwice, credentialTwice, query }): Case => {
      let entries: Entries = [...spec.template]
      if (classTag !== undefined) entries.push(['@class', classTag])
      const headers: Record<string, string> = { 'content-type': jsonType, ...spec.credential }
      if (contentTypeTwice) headers['content-type'] = [jsonType, 'text/plain'] as unknown as string
      if (credentialTwice && spec.credential) headers.authorization = [spec.credential.authorization, spec.credential.authorization] as unknown as string
      if (spec.idempotent && idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey
      const text: { text: TextDefect; cut: number }[] = []
      for (const d of defects) {
        if (d.kind === 'set') entries = [...entries.filter(([k]) => k !== d.field), [d.field, d.value]]
        else if (d.kind === 'semantic') entries = [...entries.filter(([k]) => !d.changes.some(([field]) => field === k)), ...d.changes]
        else if (d.kind === 'duplicate') entries = [...entries, [d.field, d.value]]
        else if (d.kind === 'drop') entries = entries.filter(([k]) => k !== d.field)
        else if (d.kind === 'extra') entries = [...entries, [d.key, d.value]]
        else if (d.kind === 'text') text.push(d)
        else if (d.kind === 'content-type') {
          if (d.value === undefined) delete headers['content-type']
          else headers['content-type'] = d.value
        } else if (d.kind === 'content-length') headers['content-length'] = d.value
        else if (d.kind === 'credential') {
          delete headers.authorization
          Object.assign(headers, d.headers)
        } else headers['idempotency-key'] = d.value
      }
      return { route: spec.route, method: spec.method, url: spec.url + (query ?? ''), headers, payload: serialize(entries, text), mustRefuse: true }
    })
}

/** A URL parameter: valid ids and everything a path segment can carry instead. */
const param = fc.oneof(
  fc.integer({ min: 1, max: 60 }).map(String),
  fc.constantFrom('0', '-1', '1.5', '1e3', '2147483648', '99999999999999999999', '%00', '%E0%A4%A', '%2e%2e', '..', '0x10', '1,2', '%20', 'NaN', '1'.repeat(150), '__proto__', 'constructor'),
  fc.string({ unit: 'grapheme', maxLength: 30 }).map(encodeURIComponent),
)
const anyCredential = fc.oneof(refusedCredential, fc.constantFrom(1, 2, 3, 4, 5).map((userId) => asUser(userId)))
const anyIdentity = fc.oneof(refusedCredential, fc.constantFrom(1, 2, 3, 4, 5).map(identityOf))
const noise = fc.record({
  query: fc.option(fc.constantFrom('?__proto__[polluted]=1', '?constructor[prototype][polluted]=1', '?limit=-1', '?%ff=%fe', '?a=' + 'b'.repeat(3000)), { nil: undefined }),
  requestId: fc.option(fc.string({ unit: 'grapheme-ascii', maxLength: 200 }), { nil: undefined }),
  head: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
})

function getCase(route: string, path: (p: string) => string, credential?: fc.Arbitrary<Record<string, string>>): fc.Arbitrary<Case> {
  return fc.record({ p: param, credential: credential ?? fc.constant({}), noise }).map(({ p, credential, noise }): Case => ({
    route,
    method: noise.head ? 'HEAD' : 'GET',
    url: path(p) + (noise.query ?? ''),
    headers: { ...credential, ...(noise.requestId !== undefined ? { 'x-request-id': noise.requestId } : {}) },
    mustRefuse: false,
  }))
}

const routes: { route: string; runs: number; arbitrary: fc.Arbitrary<Case> }[] = [
  ...bodyRoutes.map((spec) => ({ route: spec.route, runs: 3000, arbitrary: bodyCase(spec) })),
  { route: 'GET /point/:userId', runs: 500, arbitrary: getCase('GET /point/:userId', (p) => `/point/${p}`, anyIdentity) },
  { route: 'GET /concert/:concertId', runs: 300, arbitrary: getCase('GET /concert/:concertId', (p) => `/concert/${p}`) },
  { route: 'GET /concerts/:concertId', runs: 300, arbitrary: getCase('GET /concerts/:concertId', (p) => `/concerts/${p}`) },
  {
    route: 'GET /concert/reservation/days/:concertId',
    runs: 500,
    arbitrary: getCase('GET /concert/reservation/days/:concertId', (p) => `/concert/reservation/days/${p}`, anyCredential),
  },
  { route: 'GET /concert/seats/:concertDetailId', runs: 500, arbitrary: getCase('GET /concert/seats/:concertDetailId', (p) => `/concert/seats/${p}`, anyCredential) },
  { route: 'GET /concert/wait', runs: 300, arbitrary: getCase('GET /concert/wait', () => '/concert/wait', anyCredential) },
  {
    // Leaving is harmless only for someone not in the line: refused tokens, and the paid user 2.
    route: 'DELETE /concert/wait',
    runs: 300,
    arbitrary: fc.record({ credential: refusedCredential, body: fc.option(fc.jsonValue({ maxDepth: 2 }).map(json), { nil: undefined }) }).map(
      ({ credential, body }): Case => ({
        route: 'DELETE /concert/wait',
        method: 'DELETE',
        url: '/concert/wait',
        headers: { ...credential, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        payload: body,
        mustRefuse: false,
      }),
    ),
  },
  {
    route: 'GET /health, /docs, /docs/json, /metrics',
    runs: 100,
    arbitrary: fc.record({ path: fc.constantFrom('/health', '/docs', '/docs/json', '/metrics'), noise }).map(({ path, noise }): Case => ({
      route: 'GET /health, /docs, /docs/json, /metrics',
      method: 'GET',
      url: path + (noise.query ?? ''),
      headers: noise.requestId !== undefined ? { 'x-request-id': noise.requestId } : {},
      mustRefuse: false,
    })),
  },
  {
    route: 'unknown routes and methods',
    runs: 500,
    arbitrary: fc
      .record({
        method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
        path: fc.oneof(
          fc.constantFrom('/point', '/point/1', '/concert', '/concert/seat', '/concert/reservation/days', '/concerts', '/health', '/concert/wait/1', '//point/1', '/point/1/', '/POINT/1'),
          fc.webPath().map((p) => `/nope${p}`),
        ),
        body: fc.option(fc.jsonValue({ maxDepth: 2 }).map(json), { nil: undefined }),
      })
      // Skip the real routes: those are what the cases above are for.
      .filter(({ method, path }) => !(method === 'PATCH' && path === '/point') && !(method === 'PATCH' && path === '/concert/seat') && !(method === 'POST' && path === '/concert/reservation/days') && !(method === 'GET' && /^\/(point\/1|health)$/.test(path)))
      .map(({ method, path, body }): Case => ({
        route: 'unknown routes and methods',
        method: method as Case['method'],
        url: path,
        headers: body !== undefined ? { 'content-type': 'application/json' } : {},
        payload: body,
        mustRefuse: true,
      })),
  },
]

// ---- the property -------------------------------------------------------------------------

const counts = new Map<string, Map<number, number>>()
const frameworkLeaks = new Set<string>()

async function check(c: Case): Promise<void> {
  const res = await app.inject({ method: c.method, url: c.url, headers: c.headers, payload: c.payload })
  const seen = counts.get(c.route) ?? new Map<number, number>()
  seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1)
  counts.set(c.route, seen)
  const request = `${c.method} ${c.url.slice(0, 120)} ${JSON.stringify(c.headers).slice(0, 300)} ${JSON.stringify(c.payload?.slice(0, 300))}`
  if (res.statusCode >= 500) throw new Error(`${res.statusCode} ${res.body.slice(0, 300)} for ${request}`)
  if (c.mustRefuse && (res.statusCode < 400 || res.statusCode >= 500)) throw new Error(`accepted (${res.statusCode} ${res.body.slice(0, 200)}): ${request}`)
  if (res.statusCode >= 400 && c.method !== 'HEAD') {
    let body: unknown
    try {
      body = res.json()
    } catch {
      throw new Error(`${res.statusCode} without a JSON body (${res.body.slice(0, 100)}) for ${request}`)
    }
    if (!isErrorResponse(res.statusCode, body)) throw new Error(`${res.statusCode} not in the error shape: ${res.body.slice(0, 300)} for ${request}`)
    const { code } = body as { code: string }
    if (code.startsWith('FST_')) frameworkLeaks.add(`${res.statusCode} ${code}`)
  }
}

const started = Date.now()
for (const { route, runs, arbitrary } of routes) {
  t.test(`${route}: ${runs} hostile requests, never a 5xx, every refusal in the error shape`, async (t) => {
    await fc.assert(fc.asyncProperty(arbitrary, check), { numRuns: runs })
    const statuses = [...(counts.get(route) ?? [])].sort((a, b) => a[0] - b[0])
    const checked = statuses.reduce((sum, [, n]) => sum + n, 0)
    t.comment(`${route}: ${checked} requests (${statuses.map(([status, n]) => `${status}: ${n}`).join(', ')})`)
    t.equal(checked, runs, 'every generated request was sent and held to the property')
  })
}

t.test('afterwards nothing changed: balances, seats, reservations, payments, history, idempotency keys, queue', async (t) => {
  const total = [...counts.values()].reduce((sum, seen) => sum + [...seen.values()].reduce((a, b) => a + b, 0), 0)
  t.comment(`${total} requests in ${Date.now() - started} ms`)
  t.same(await snapshot(), before)
  t.same([...frameworkLeaks], [], 'no refusal leaks a Fastify code')
})
