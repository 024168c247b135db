import { gunzipSync } from 'node:zlib'
import t from 'tap'
import type { Config } from '../src/config.js'
import { sql } from 'kysely'
import { GZIP_MIN_BYTES } from '../src/concerts/content-coding.js'
import { seatMapQuery } from '../src/concerts/repository.js'
import { SEED_CONCERT_ID } from '../src/db/seed.js'
import { appInstances } from './helpers/app.js'
import { addHall, addHallConcert, HALL_CONCERT_ID } from './helpers/halls.js'
import { bearer, send, type Reply } from './helpers/http.js'
import { eachConcurrently, range } from './helpers/lists.js'
import { OPEN_QUEUE, activeTokens } from './helpers/queue.js'
import { waitFor } from './helpers/wait.js'

const seatMap = (url: string, concertDetailId: number, token: string, headers: Record<string, string> = {}, view = 'full') =>
  send(url, 'GET', `/concert/seats/${concertDetailId}?view=${view}`, { headers: { ...bearer(token), ...headers } })

const hold = (url: string, token: string, userId: number, concertDetailId: number, seatNo: number) =>
  send(url, 'PATCH', '/concert/seat', { headers: bearer(token), body: { userId, concertDetailId, seatNo } })

/** The seat numbers an answer shows free, from either view. */
function freeSeats(body: unknown): number[] {
  if (Array.isArray(body)) return body.filter((seat) => seat.status === 'AVAILABLE').map((seat) => seat.seatNo)
  return (body as { available: number[] }).available
}

t.test('holds and payments through two instances: no seat map shows a taken seat free later than SEAT_MAP_CHECK_MS after it was taken', async (t) => {
  const checkMs = 25
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: checkMs, HOLD_TTL_MS: 600_000 })
  const seats = 240
  const hall = await addHall(db, SEED_CONCERT_ID, seats, 1000)
  const bookers = range(1, 60)
  const pollers = range(61, 4)
  const tokens = await activeTokens(urls[0]!, [...bookers, ...pollers], { timeoutMs: 30_000 })
  const tokenOf = (userId: number) => tokens[userId - 1]!
  const via = (i: number) => urls[i % 2]!

  // When each seat was taken, as the taker saw it answered: the bump was done by then.
  const takenAt = new Map<number, number>()
  let booking = true
  let polls = 0
  let staleWithinBound = 0
  const late: string[] = []
  const poll = async (userId: number) => {
    for (let i = 0; booking; i++) {
      const sentAt = Date.now()
      const answer = await seatMap(via(userId + i), hall, tokenOf(userId), {}, i % 2 ? 'available' : 'full')
      if (answer.status !== 200) throw new Error(`seat map answered ${answer.status}`)
      polls++
      for (const seatNo of freeSeats(answer.body)) {
        const taken = takenAt.get(seatNo)
        if (taken === undefined || taken > sentAt) continue
        if (taken < sentAt - checkMs) late.push(`seat ${seatNo} taken ${sentAt - taken} ms before a map that showed it free`)
        else staleWithinBound++
      }
    }
  }
  const book = async (userId: number) => {
    // Three holds each, then one of them paid: seats go HELD and SOLD while the maps are read.
    const mine = range((userId - 1) * 4 + 1, 3)
    for (const [i, seatNo] of mine.entries()) {
      const answer = await hold(via(userId + i), tokenOf(userId), userId, hall, seatNo)
      if (answer.status !== 200) throw new Error(`hold of seat ${seatNo} answered ${answer.status} ${JSON.stringify(answer.body)}`)
      takenAt.set(seatNo, Date.now())
    }
    const paid = await send(via(userId + 1), 'POST', '/concert/reservation/days', { headers: bearer(tokenOf(userId)), body: { userId, concertDetailId: hall, seatNo: mine[0] } })
    if (paid.status !== 200) throw new Error(`payment answered ${paid.status} ${JSON.stringify(paid.body)}`)
  }
  const polling = Promise.all(pollers.map(poll))
  try {
    await eachConcurrently(bookers, 20, book)
  } finally {
    booking = false
    await polling
  }

  t.equal(takenAt.size, bookers.length * 3, 'every hold went through')
  t.ok(polls >= 20, `${polls} seat maps read while seats were being taken`)
  t.same(late, [], 'no map showed a seat free longer than the bound after it was taken')
  t.comment(`${staleWithinBound} free-looking seats were taken less than ${checkMs} ms before the map was asked for`)
  for (const url of urls) {
    const final = await seatMap(url, hall, tokenOf(pollers[0]!))
    t.same(freeSeats(final.body).filter((seatNo) => takenAt.has(seatNo)), [], 'afterwards both instances show every taken seat taken')
    // HELD turning SOLD is bounded by the same version check: wait it out, with a deadline.
    const sold = async () => (await seatMap(url, hall, tokenOf(pollers[0]!))).body.filter((seat: { status: string }) => seat.status === 'SOLD').length
    await waitFor('every payment shown SOLD', async () => (await sold()) === bookers.length, { timeoutMs: 5000 })
    t.equal(await sold(), bookers.length, 'one seat sold per booker')
  }
})

t.test('an unchanged seat map answers 304 to its ETag on either instance; a hold on the other changes it at once with SEAT_MAP_CHECK_MS=0', async (t) => {
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0 })
  const [a, b] = urls as [string, string]
  const hall = await addHall(db, SEED_CONCERT_ID, 30)
  const [poller, holder] = await activeTokens(a, [1, 2])

  const first = await seatMap(a, hall, poller!)
  t.equal(first.status, 200)
  const etag = first.headers.etag!
  t.match(etag, /^"[A-Za-z0-9_-]+"$/, 'a strong ETag')
  t.equal(first.headers['cache-control'], 'private, no-cache', 'clients revalidate before reuse')
  const again = await seatMap(b, hall, poller!, { 'if-none-match': etag })
  t.equal(again.status, 304, 'the other instance built the same bytes: 304')
  t.equal(again.body, '', 'a 304 has no body')
  t.equal((await seatMap(b, hall, poller!, { 'if-none-match': `"other", W/${etag}` })).status, 304, 'a list and a weak form match too')

  t.equal((await hold(b, holder!, 2, hall, 7)).status, 200)
  const changed = await seatMap(a, hall, poller!, { 'if-none-match': etag })
  t.equal(changed.status, 200, 'after a hold through the other instance the old ETag no longer matches')
  t.not(changed.headers.etag, etag, 'a new ETag')
  t.same(changed.body[6], { seatNo: 7, status: 'HELD' }, 'the hold shows')
})

t.test('a map of free, held, lapsed and sold seats is read from one index alone and lists every seat once, in seat order', async (t) => {
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0 })
  const seats = 2000
  const hall = await addHall(db, SEED_CONCERT_ID, seats)
  // Statuses scattered over the hall, so the index hands MySQL one run of seat numbers per status.
  await sql`UPDATE seats SET status = 'SOLD', user_id = 1 WHERE concert_detail_id = ${hall} AND seat_no % 7 = 3`.execute(db)
  await sql`UPDATE seats SET status = 'HELD', user_id = 1, held_until = NOW(3) + INTERVAL 10 MINUTE WHERE concert_detail_id = ${hall} AND seat_no % 11 = 5`.execute(db)
  await sql`UPDATE seats SET status = 'HELD', user_id = 1, held_until = NOW(3) - INTERVAL 1 SECOND WHERE concert_detail_id = ${hall} AND seat_no % 13 = 8`.execute(db)
  const statusOf = (seatNo: number) => (seatNo % 13 === 8 ? 'AVAILABLE' : seatNo % 11 === 5 ? 'HELD' : seatNo % 7 === 3 ? 'SOLD' : 'AVAILABLE')

  const compiled = seatMapQuery(db, hall).compile()
  const explained = await db.executeQuery<{ key: string | null; Extra: string | null }>({ ...compiled, sql: `EXPLAIN ${compiled.sql}` })
  t.same(explained.rows.map((row) => row.key), ['seats_detail_map'], 'MySQL reads the map through the index on (option, status, seat, hold end)')
  t.match(explained.rows[0]?.Extra, /Using index/, 'and from the index alone, without a lookup per seat')

  const [token] = await activeTokens(urls[0]!, [2])
  const map = await seatMap(urls[0]!, hall, token!)
  t.equal(map.status, 200)
  t.same(map.body, range(1, seats).map((seatNo) => ({ seatNo, status: statusOf(seatNo) })), 'every seat once, in seat order, a lapsed hold shown free')
})

t.test('?view=available answers only the free seat numbers; another view is a 400', async (t) => {
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0 })
  const [a, b] = urls as [string, string]
  const hall = await addHall(db, SEED_CONCERT_ID, 10)
  const [userToken] = await activeTokens(a, [3])
  t.equal((await hold(b, userToken!, 3, hall, 4)).status, 200)

  const compact = await seatMap(a, hall, userToken!, {}, 'available')
  t.equal(compact.status, 200)
  t.same(compact.body, { concertDetailId: hall, totalSeats: 10, available: [1, 2, 3, 5, 6, 7, 8, 9, 10] })
  const full = await seatMap(a, hall, userToken!)
  t.not(compact.headers.etag, full.headers.etag, 'each view has its own ETag')
  const bad = await seatMap(a, hall, userToken!, {}, 'bitmap')
  t.equal(bad.status, 400)
  t.equal(bad.body.code, 'VALIDATION_FAILED')
})

t.test('the bookable days drop a sold-out day as soon as its last seat is held, on the other instance too', async (t) => {
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0 })
  const [a, b] = urls as [string, string]
  await addHallConcert(db)
  const lastSeat = await addHall(db, HALL_CONCERT_ID, 1)
  const roomy = await addHall(db, HALL_CONCERT_ID, 5)
  const [userToken] = await activeTokens(a, [4], { concertId: HALL_CONCERT_ID })
  const days = async (url: string, headers: Record<string, string> = {}) =>
    send(url, 'GET', `/concert/reservation/days/${HALL_CONCERT_ID}`, { headers: { ...bearer(userToken!), ...headers } })

  // The hall concert has seeded days of its own: look only at the two added here.
  const added = (answer: Reply) => answer.body.map((day: { concertDetailId: number }) => day.concertDetailId).filter((id: number) => id === lastSeat || id === roomy)
  const before = await days(a)
  t.same(added(before), [lastSeat, roomy], 'both days bookable')
  t.equal((await days(b, { 'if-none-match': before.headers.etag! })).status, 304, 'unchanged: 304')
  t.equal((await hold(b, userToken!, 4, lastSeat, 1)).status, 200)
  const after = await days(a, { 'if-none-match': before.headers.etag! })
  t.equal(after.status, 200)
  t.same(added(after), [roomy], 'the sold-out day is gone')
  t.equal((await days(a)).status, 200)
  t.equal((await send(a, 'GET', '/concert/reservation/days/999', { headers: bearer(userToken!) })).status, 404)
})

t.test('a lapsing hold frees its seat in the cached map and days by itself, with no bump', async (t) => {
  // A cache that lived its full CONCERT_CACHE_MS would still show the seat held when the wait gives up.
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, HOLD_TTL_MS: 400, CONCERT_CACHE_MS: 60_000 })
  const [a] = urls as [string, string]
  await addHallConcert(db)
  const hall = await addHall(db, HALL_CONCERT_ID, 1)
  const [userToken] = await activeTokens(a, [5], { concertId: HALL_CONCERT_ID })
  t.equal((await hold(a, userToken!, 5, hall, 1)).status, 200)
  t.same((await seatMap(a, hall, userToken!)).body, [{ seatNo: 1, status: 'HELD' }], 'held while the hold runs')
  const heldAt = Date.now()
  await waitFor('the lapsed hold to show free', async () => freeSeats((await seatMap(a, hall, userToken!)).body).includes(1), { timeoutMs: 10_000 })
  t.ok(Date.now() - heldAt < 10_000, `shown free ${Date.now() - heldAt} ms after the map showed it held`)
  const days = await send(a, 'GET', `/concert/reservation/days/${HALL_CONCERT_ID}`, { headers: bearer(userToken!) })
  t.ok(days.body.some((day: { concertDetailId: number }) => day.concertDetailId === hall), 'the day is bookable again')
})

t.test('a change made behind the cache (SQL, no bump) stays unseen until CONCERT_CACHE_MS: the map really is cached', async (t) => {
  const cacheMs = 3000
  const { config, db, urls } = await appInstances(t, { ...OPEN_QUEUE, CONCERT_CACHE_MS: cacheMs, SEAT_MAP_CHECK_MS: 0 })
  const [a] = urls as [string, string]
  const hall = await addHall(db, SEED_CONCERT_ID, 3)
  const [userToken] = await activeTokens(a, [6])
  const builtBefore = Date.now()
  t.same(freeSeats((await seatMap(a, hall, userToken!)).body), [1, 2, 3])
  await db.updateTable('seats').set({ status: 'SOLD', user_id: 6 }).where('concert_detail_id', '=', hall).where('seat_no', '=', 2).execute()
  const cached = freeSeats((await seatMap(a, hall, userToken!)).body)
  if (Date.now() - builtBefore < cacheMs) t.same(cached, [1, 2, 3], 'still the cached bytes: nothing bumped the version')
  await waitFor('the age limit to end the cached map', async () => !freeSeats((await seatMap(a, hall, userToken!)).body).includes(2), { timeoutMs: cacheMs + 10_000 })
  t.pass(`seen after the age limit of ${(config as Config).CONCERT_CACHE_MS} ms`)
})

// SERIALIZER=worker builds the maps' bytes in a pool thread; their gzip copies must still decode to them.
for (const serializer of ['inline', 'worker']) {
  t.test(`clients that accept gzip get the full map, the available view and the days gzipped, decoding to exactly the identity bytes (SERIALIZER=${serializer})`, async (t) => {
    const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0, SERIALIZER: serializer })
    const [a, b] = urls as [string, string]
    await addHallConcert(db)
    const hall = await addHall(db, HALL_CONCERT_ID, 600)
    // Enough days that their list is worth compressing too.
    for (let i = 0; i < 10; i++) await addHall(db, HALL_CONCERT_ID, 1)
    const [userToken] = await activeTokens(a, [7], { concertId: HALL_CONCERT_ID })
    const bodies = {
      full: `/concert/seats/${hall}?view=full`,
      available: `/concert/seats/${hall}?view=available`,
      days: `/concert/reservation/days/${HALL_CONCERT_ID}`,
    }
    for (const [name, path] of Object.entries(bodies)) {
      const get = (url: string, headers: Record<string, string>) => send(url, 'GET', path, { headers: { ...bearer(userToken!), ...headers }, binary: true })
      const identity = await get(a, {})
      const gzipped = await get(b, { 'accept-encoding': 'gzip, deflate, br' })
      t.ok(identity.body.length >= GZIP_MIN_BYTES, `${name}: ${identity.body.length} bytes, large enough to compress`)
      t.equal(identity.headers['content-encoding'], undefined, `${name}: no Accept-Encoding, no content coding`)
      t.equal(gzipped.headers['content-encoding'], 'gzip', `${name}: gzip when accepted`)
      t.ok(gunzipSync(gzipped.body).equals(identity.body), `${name}: the gzip copy decodes to the identity bytes`)
      t.ok(gzipped.body.length < identity.body.length / 2, `${name}: ${gzipped.body.length} bytes gzipped`)
      t.equal(Number(gzipped.headers['content-length']), gzipped.body.length, `${name}: Content-Length counts the gzipped bytes`)
      t.equal(gzipped.headers.etag, identity.headers.etag!.replace(/"$/, '-gzip"'), `${name}: the gzip ETag is the identity ETag with a suffix`)
      t.same([identity.headers.vary, gzipped.headers.vary], ['accept-encoding', 'accept-encoding'], `${name}: both say they vary by Accept-Encoding`)
    }
  })
}

t.test('gzip refused, or not asked for, gets identity; accepted in any spelling gets gzip; HEAD says what GET would send', async (t) => {
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0 }, 1)
  const [a] = urls as [string]
  const hall = await addHall(db, SEED_CONCERT_ID, 200)
  const [userToken] = await activeTokens(a, [8])
  const coding = async (acceptEncoding?: string) => (await seatMap(a, hall, userToken!, acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding })).headers['content-encoding']
  for (const refused of [undefined, '', 'gzip;q=0', 'gzip; q=0.000, *', '*;q=0', 'br, deflate', 'identity, gzip;q=0.5']) {
    t.equal(await coding(refused), undefined, `${JSON.stringify(refused)}: identity`)
  }
  for (const accepted of ['gzip', 'GZIP', 'x-gzip', '*', 'br;q=1, gzip;q=0.8, identity;q=0.5', 'deflate;q=0.5, *;q=0.1']) {
    t.equal(await coding(accepted), 'gzip', `${JSON.stringify(accepted)}: gzip`)
  }

  const get = await send(a, 'GET', `/concert/seats/${hall}`, { headers: { ...bearer(userToken!), 'accept-encoding': 'gzip' }, binary: true })
  const head = await send(a, 'HEAD', `/concert/seats/${hall}`, { headers: { ...bearer(userToken!), 'accept-encoding': 'gzip' }, binary: true })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0, 'HEAD has no body')
  t.same(
    [head.headers['content-encoding'], head.headers['content-length'], head.headers.etag],
    ['gzip', String(get.body.length), get.headers.etag],
    'HEAD sends the coding, length and ETag of the gzip copy GET sends',
  )
})

t.test('pollers that accept gzip get 304s to either ETag; both change with a hold', async (t) => {
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0 })
  const [a, b] = urls as [string, string]
  const hall = await addHall(db, SEED_CONCERT_ID, 200)
  const [poller, holder] = await activeTokens(a, [9, 10])
  const gzip = { 'accept-encoding': 'gzip' }
  const identity = (await seatMap(a, hall, poller!)).headers.etag!
  const first = await seatMap(a, hall, poller!, gzip)
  const etag = first.headers.etag!
  t.match(etag, /^"[A-Za-z0-9_-]+-gzip"$/, 'a strong ETag of its own')

  const again = await seatMap(b, hall, poller!, { ...gzip, 'if-none-match': etag })
  t.equal(again.status, 304, 'the other instance made the same gzip copy: 304')
  t.same([again.headers.etag, again.headers.vary, again.headers['content-encoding']], [etag, 'accept-encoding', undefined], 'the 304 names the ETag that matched')
  const heldIdentity = await seatMap(b, hall, poller!, { ...gzip, 'if-none-match': identity })
  t.equal(heldIdentity.status, 304, 'a client holding the identity copy holds the current content: 304')
  t.equal(heldIdentity.headers.etag, identity, 'under the ETag of the copy it holds')
  const gzipRefused = await seatMap(b, hall, poller!, { 'accept-encoding': 'gzip;q=0', 'if-none-match': etag })
  t.equal(gzipRefused.status, 200, 'the gzip ETag names no representation a client refusing gzip could get: 200')
  t.equal(gzipRefused.headers.etag, identity, 'with the identity copy')

  t.equal((await hold(b, holder!, 10, hall, 3)).status, 200)
  const changed = await send(a, 'GET', `/concert/seats/${hall}`, { headers: { ...bearer(poller!), ...gzip, 'if-none-match': `${identity}, ${etag}` }, binary: true })
  t.equal(changed.status, 200, 'after a hold neither old ETag matches')
  t.equal(changed.headers['content-encoding'], 'gzip')
  t.not(changed.headers.etag, etag, 'a new gzip ETag')
  t.same(JSON.parse(gunzipSync(changed.body).toString())[2], { seatNo: 3, status: 'HELD' }, 'the hold shows in the gzip copy')
  const changedIdentity = await seatMap(a, hall, poller!, { 'if-none-match': identity })
  t.equal(changedIdentity.status, 200)
  t.not(changedIdentity.headers.etag, identity, 'a new identity ETag')
  t.equal(changed.headers.etag, changedIdentity.headers.etag!.replace(/"$/, '-gzip"'), 'the two still pair up')
})

t.test('bodies under GZIP_MIN_BYTES are sent as they are, gzip accepted or not', async (t) => {
  const { db, urls } = await appInstances(t, { ...OPEN_QUEUE, SEAT_MAP_CHECK_MS: 0 }, 1)
  const [a] = urls as [string]
  const hall = await addHall(db, SEED_CONCERT_ID, 10)
  const [userToken] = await activeTokens(a, [11])
  for (const view of ['full', 'available']) {
    const answer = await seatMap(a, hall, userToken!, { 'accept-encoding': 'gzip' }, view)
    t.ok(Number(answer.headers['content-length']) < GZIP_MIN_BYTES, `${view}: ${answer.headers['content-length']} bytes`)
    t.equal(answer.headers['content-encoding'], undefined, `${view}: not compressed`)
    t.match(answer.headers.etag, /^"[A-Za-z0-9_-]+"$/, `${view}: the identity ETag`)
    t.equal(answer.headers.vary, 'accept-encoding', `${view}: still varies by Accept-Encoding`)
  }
})
