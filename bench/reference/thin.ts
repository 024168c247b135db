import { createHmac, timingSafeEqual } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import { createPool, type PoolConnection, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise'
import { loadConfig } from '../../src/config.js'
import { createTtlCache } from '../../src/concerts/ttl-cache.js'
import { SEED_CONCERT_ID } from '../../src/db/seed.js'
import { catalogKeys } from '../../src/queue/catalog.js'
import { createQueue, defineQueueCommands, queueSettings } from '../../src/queue/queue.js'
import { serveReference } from './serve.js'

// The floor for the app's layers: every endpoint as one bare Fastify handler doing the app's SQL
// through mysql2 and the app's Lua scripts through ioredis, with the same HS256 tokens, the same
// short concert cache and the same admitter, and nothing else (no Kysely, no schemas, no plugins).
// What the app spends above this is what its structure costs.
await serveReference('thin', async () => {
  const config = loadConfig()
  const secret = config.TOKEN_SECRET ?? ''
  const mysql = createPool({ uri: config.MYSQL_URL, connectionLimit: config.MYSQL_POOL_SIZE, maxIdle: config.MYSQL_POOL_SIZE, timezone: 'Z', decimalNumbers: true, supportBigNumbers: true })
  mysql.pool.on('connection', (connection) => connection.query("SET time_zone = '+00:00'"))
  const redis = new Redis(config.REDIS_URL, { enableOfflineQueue: true, maxRetriesPerRequest: 1 })
  defineQueueCommands(redis)
  // The report's scripts use the first concert's queue only.
  const concertId = SEED_CONCERT_ID
  const queue = createQueue(redis, config.REDIS_KEY_PREFIX, queueSettings(config))
  const knownUsers = catalogKeys(config.REDIS_KEY_PREFIX).users

  const rows = async <T>(query: string, values: unknown[] = [], on: Pick<PoolConnection, 'query'> = mysql) => (await on.query<RowDataPacket[]>(query, values))[0] as T[]
  const write = async (query: string, values: unknown[], on: PoolConnection) => (await on.query<ResultSetHeader>(query, values))[0]

  // As the app does: a deadlock victim was rolled back whole, so it is run again (up to 4 times).
  async function inTransaction<T>(work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const connection = await mysql.getConnection()
      try {
        await connection.query('START TRANSACTION')
        const result = await work(connection)
        await connection.query('COMMIT')
        return result
      } catch (error) {
        await connection.query('ROLLBACK')
        const errno = (error as { errno?: number }).errno
        if ((errno !== 1213 && errno !== 1205) || attempt >= 4) throw error
      } finally {
        connection.release()
      }
      await delay(5 * attempt + Math.random() * 10)
    }
  }

  class Refusal {
    constructor(readonly statusCode: number, readonly code: string) {}
  }
  const refuse = (statusCode: number, code: string) => new Refusal(statusCode, code)

  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')
  const hmac = (text: string) => createHmac('sha256', secret).update(text).digest()
  const sign = (userId: number) => {
    const now = Math.floor(Date.now() / 1000)
    const body = `${header}.${Buffer.from(JSON.stringify({ sub: String(userId), iat: now, exp: now + config.TOKEN_TTL_S })).toString('base64url')}`
    return `${body}.${hmac(body).toString('base64url')}`
  }
  const authenticate = (request: FastifyRequest): number => {
    const token = request.headers.authorization?.replace(/^Bearer\s+/i, '') ?? ''
    const [head, payload, signature] = token.split('.')
    if (!head || !payload || !signature) throw refuse(401, 'TOKEN_INVALID')
    const expected = hmac(`${head}.${payload}`)
    const given = Buffer.from(signature, 'base64url')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refuse(401, 'TOKEN_INVALID')
    let claims: { sub: string; exp: number }
    try {
      if (JSON.parse(Buffer.from(head, 'base64url').toString()).alg !== 'HS256') throw new Error('not HS256')
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
    } catch {
      throw refuse(401, 'TOKEN_INVALID')
    }
    if (claims.exp * 1000 <= Date.now()) throw refuse(401, 'TOKEN_EXPIRED')
    return Number(claims.sub)
  }

  const requireActive = async (request: FastifyRequest): Promise<number> => {
    const userId = authenticate(request)
    const { status } = await queue.verifyAndTouch(userId, concertId)
    if (status !== 'ACTIVE') throw refuse(403, status === 'NONE' ? 'NOT_IN_QUEUE' : 'NOT_ACTIVE')
    return userId
  }

  const id = (value: unknown): number => {
    const number = typeof value === 'number' ? value : Number(value)
    if (!Number.isInteger(number) || number < 1) throw refuse(400, 'VALIDATION_FAILED')
    return number
  }
  const seatBody = (request: FastifyRequest) => {
    const body = request.body as Record<string, unknown>
    return { userId: id(body?.userId), concertDetailId: id(body?.concertDetailId), seatNo: id(body?.seatNo) }
  }
  const param = (request: FastifyRequest, name: string) => id((request.params as Record<string, string>)[name])

  const isFree = "(status = 'AVAILABLE' OR (status = 'HELD' AND held_until <= NOW(3)))"
  const options = async (concertId: number) => {
    const [exists, details] = await Promise.all([
      rows('SELECT id FROM concerts WHERE id = ?', [concertId]),
      rows<{ id: number; starts_at: Date; price: number; total_seats: number; available: number }>(
        `SELECT d.id, d.starts_at, d.price, d.total_seats, (SELECT COUNT(*) FROM seats WHERE seats.concert_detail_id = d.id AND ${isFree}) AS available
         FROM concert_details AS d WHERE d.concert_id = ? ORDER BY d.starts_at`,
        [concertId],
      ),
    ])
    if (!exists.length) return undefined
    return details.map((d) => ({ concertDetailId: d.id, date: d.starts_at.toISOString(), price: d.price, totalSeats: d.total_seats, availableSeats: Number(d.available) }))
  }
  const cachedConcert = createTtlCache<number, unknown>(config.CONCERT_CACHE_MS)
  const cachedOptions = createTtlCache<number, unknown>(config.CONCERT_CACHE_MS)

  const app = Fastify({ logger: false })
  app.setErrorHandler((error: unknown, _request: FastifyRequest, reply: FastifyReply) => {
    // Fastify's own refusals (a body that is not JSON, ...) carry their status; anything else is a bug.
    const { statusCode, code } = error instanceof Refusal ? error : { statusCode: (error as { statusCode?: number }).statusCode ?? 500, code: 'ERROR' }
    return reply.code(statusCode).send({ statusCode, error: code, message: code, code })
  })

  app.get('/point/:userId', async (request) => {
    const [user] = await rows<{ id: number; point: number }>('SELECT id, point FROM users WHERE id = ?', [param(request, 'userId')])
    if (!user) throw refuse(404, 'USER_NOT_FOUND')
    return { userId: user.id, point: user.point }
  })

  app.patch('/point', async (request) => {
    const body = request.body as Record<string, unknown>
    const userId = id(body?.userId)
    const charge = id(body?.charge)
    if (charge > config.MAX_CHARGE) throw refuse(400, 'VALIDATION_FAILED')
    return inTransaction(async (trx) => {
      const updated = await write('UPDATE users SET point = point + ? WHERE id = ? AND point + ? <= ?', [charge, userId, charge, config.MAX_BALANCE], trx)
      if (updated.affectedRows === 0) throw refuse((await rows('SELECT id FROM users WHERE id = ?', [userId], trx)).length ? 409 : 404, 'NOT_CHARGED')
      const [{ point }] = (await rows<{ point: number }>('SELECT point FROM users WHERE id = ?', [userId], trx)) as [{ point: number }]
      await write("INSERT INTO point_history (user_id, kind, amount, balance_after, reservation_id) VALUES (?, 'CHARGE', ?, ?, NULL)", [userId, charge, point], trx)
      return { userId, point }
    })
  })

  app.get('/concert/:concertId', async (request) => {
    const concertId = param(request, 'concertId')
    const concert = await cachedConcert(concertId, async () => {
      const [row] = await rows<{ id: number; title: string; artist: string; venue: string }>('SELECT id, title, artist, venue FROM concerts WHERE id = ?', [concertId])
      return row && { concertId: row.id, title: row.title, artist: row.artist, venue: row.venue }
    })
    if (!concert) throw refuse(404, 'CONCERT_NOT_FOUND')
    return concert
  })

  app.get('/concerts/:concertId', async (request) => {
    const concertId = param(request, 'concertId')
    const found = await cachedOptions(concertId, () => options(concertId))
    if (!found) throw refuse(404, 'CONCERT_NOT_FOUND')
    return found
  })

  app.post('/concert/wait', async (request) => {
    const userId = id((request.body as Record<string, unknown>)?.userId)
    if (!(await redis.sismember(knownUsers, userId))) throw refuse(404, 'USER_NOT_FOUND')
    return { token: sign(userId), ...(await queue.enqueue(userId, concertId)) }
  })

  app.get('/concert/wait', async (request) => {
    const userId = authenticate(request)
    const status = await queue.heartbeat(userId, concertId)
    if (status.status === 'NONE') throw refuse(404, 'NOT_IN_QUEUE')
    return { userId, ...status }
  })

  app.get('/concert/reservation/days/:concertId', async (request) => {
    await requireActive(request)
    const found = await options(param(request, 'concertId'))
    if (!found) throw refuse(404, 'CONCERT_NOT_FOUND')
    const now = Date.now()
    return found.filter((option) => option.availableSeats > 0 && Date.parse(option.date) > now)
  })

  app.get('/concert/seats/:concertDetailId', async (request) => {
    await requireActive(request)
    const concertDetailId = param(request, 'concertDetailId')
    const seats = await rows(
      "SELECT seat_no AS seatNo, CASE WHEN status = 'HELD' AND held_until <= NOW(3) THEN 'AVAILABLE' ELSE status END AS status FROM seats WHERE concert_detail_id = ? ORDER BY seat_no",
      [concertDetailId],
    )
    if (!seats.length && !(await rows('SELECT id FROM concert_details WHERE id = ?', [concertDetailId])).length) throw refuse(404, 'CONCERT_DETAIL_NOT_FOUND')
    return seats
  })

  const holdOf = async (reservationId: number, on: Pick<PoolConnection, 'query'> = mysql) => {
    const [row] = (await rows<{ id: number; concert_detail_id: number; seat_no: number; held_until: Date; price: number }>(
      'SELECT id, concert_detail_id, seat_no, held_until, price FROM reservations WHERE id = ?',
      [reservationId],
      on,
    )) as [{ id: number; concert_detail_id: number; seat_no: number; held_until: Date; price: number }]
    return { reservationId: row.id, concertDetailId: row.concert_detail_id, seatNo: row.seat_no, heldUntil: row.held_until.toISOString(), price: row.price }
  }

  app.patch('/concert/seat', async (request) => {
    const authUser = await requireActive(request)
    const { userId, concertDetailId, seatNo } = seatBody(request)
    if (userId !== authUser) throw refuse(403, 'USER_MISMATCH')
    const held = await inTransaction(async (trx) => {
      const claim = await write(
        `UPDATE seats SET status = 'HELD', user_id = ?, held_until = NOW(3) + INTERVAL ? MICROSECOND
         WHERE concert_detail_id = ? AND seat_no = ? AND ${isFree}`,
        [userId, config.HOLD_TTL_MS * 1000, concertDetailId, seatNo],
        trx,
      )
      if (claim.affectedRows === 0) return undefined
      type Claimed = { id: number; held_until: Date; reservation_id: number | null }
      const [seat] = (await rows<Claimed>('SELECT id, held_until, reservation_id FROM seats WHERE concert_detail_id = ? AND seat_no = ?', [concertDetailId, seatNo], trx)) as [Claimed]
      if (seat.reservation_id) await write("UPDATE reservations SET status = 'EXPIRED' WHERE id = ? AND status = 'HELD'", [seat.reservation_id], trx)
      const [{ price }] = (await rows<{ price: number }>('SELECT price FROM concert_details WHERE id = ?', [concertDetailId], trx)) as [{ price: number }]
      const inserted = await write(
        "INSERT INTO reservations (user_id, concert_detail_id, seat_no, price, status, held_until, confirmed_at) VALUES (?, ?, ?, ?, 'HELD', ?, NULL)",
        [userId, concertDetailId, seatNo, price, seat.held_until],
        trx,
      )
      await write('UPDATE seats SET reservation_id = ? WHERE id = ?', [inserted.insertId, seat.id], trx)
      return holdOf(inserted.insertId, trx)
    })
    if (held) return held
    const [seat] = await rows<{ status: string; user_id: number; reservation_id: number; live: number }>(
      'SELECT status, user_id, reservation_id, held_until > NOW(3) AS live FROM seats WHERE concert_detail_id = ? AND seat_no = ?',
      [concertDetailId, seatNo],
    )
    if (!seat) throw refuse(404, 'SEAT_NOT_FOUND')
    if (seat.status === 'HELD' && seat.user_id === userId && Number(seat.live) === 1 && seat.reservation_id) return holdOf(seat.reservation_id)
    throw refuse(409, 'SEAT_TAKEN')
  })

  app.post('/concert/reservation/days', async (request) => {
    const authUser = authenticate(request)
    const { userId, concertDetailId, seatNo } = seatBody(request)
    if (userId !== authUser) throw refuse(403, 'USER_MISMATCH')
    if ((await queue.verifyAndTouch(userId, concertId)).status !== 'ACTIVE') throw refuse(403, 'NOT_ACTIVE')
    const paid = await inTransaction(async (trx) => {
      const [seat] = await rows<{ id: number; status: string; user_id: number; reservation_id: number; live: number }>(
        'SELECT id, status, user_id, reservation_id, held_until > NOW(3) AS live FROM seats WHERE concert_detail_id = ? AND seat_no = ? FOR UPDATE',
        [concertDetailId, seatNo],
        trx,
      )
      if (!seat) throw refuse(404, 'SEAT_NOT_FOUND')
      if (seat.status !== 'HELD' || seat.user_id !== userId || !seat.reservation_id) throw refuse(409, 'HOLD_NOT_FOUND')
      if (Number(seat.live) !== 1) throw refuse(409, 'HOLD_EXPIRED')
      const [reservation] = (await rows<{ id: number; price: number }>('SELECT id, price FROM reservations WHERE id = ? FOR UPDATE', [seat.reservation_id], trx)) as [{ id: number; price: number }]
      const debit = await write('UPDATE users SET point = point - ? WHERE id = ? AND point >= ?', [reservation.price, userId, reservation.price], trx)
      if (debit.affectedRows === 0) throw refuse(402, 'INSUFFICIENT_POINTS')
      await write("UPDATE seats SET status = 'SOLD', held_until = NULL WHERE id = ?", [seat.id], trx)
      await write("UPDATE reservations SET status = 'CONFIRMED', confirmed_at = NOW(3) WHERE id = ?", [reservation.id], trx)
      const payment = await write('INSERT INTO payments (reservation_id, user_id, amount) VALUES (?, ?, ?)', [reservation.id, userId, reservation.price], trx)
      const [{ point }] = (await rows<{ point: number }>('SELECT point FROM users WHERE id = ?', [userId], trx)) as [{ point: number }]
      await write("INSERT INTO point_history (user_id, kind, amount, balance_after, reservation_id) VALUES (?, 'PAYMENT', ?, ?, ?)", [userId, -reservation.price, point, reservation.id], trx)
      return { reservationId: reservation.id, paymentId: payment.insertId, amount: reservation.price, point }
    })
    await queue.leave(userId, concertId)
    return paid
  })

  // The admitter, as the app runs it: every worker ticks twice a slot, the script lets one win.
  const tick = setInterval(async () => {
    try {
      if (!(await queue.admitTick(concertId)).won) return
      await mysql.query(
        `UPDATE seats s JOIN reservations r ON r.id = s.reservation_id
         SET s.status = 'AVAILABLE', s.user_id = NULL, s.reservation_id = NULL, s.held_until = NULL, r.status = 'EXPIRED'
         WHERE s.status = 'HELD' AND s.held_until <= NOW(3) AND r.status = 'HELD'`,
      )
      await mysql.query("UPDATE reservations SET status = 'EXPIRED' WHERE status = 'HELD' AND held_until <= NOW(3) LIMIT 1000")
    } catch {
      // A missed tick is retried half a slot later.
    }
  }, Math.max(5, Math.floor(config.ADMIT_INTERVAL_MS / 2)))

  app.addHook('onClose', async () => {
    clearInterval(tick)
    await mysql.end()
    redis.disconnect()
  })
  return app
})
