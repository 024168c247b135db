import { Kysely, MysqlDialect, type MysqlPool, type MysqlPoolConnection } from 'kysely'
import { createPool, createConnection, type Pool, type PoolOptions } from 'mysql2'
import { Codel, SHED_SAMPLE_MS } from '../shared/codel.js'
import type { Database } from './schema.js'

const DATABASE_NAME = /^[A-Za-z0-9_]{1,64}$/

/** Splits a MySQL URL into the server part and the database name. */
export function parseMysqlUrl(url: string): { serverUrl: string; database: string } {
  const parsed = new URL(url)
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''))
  if (!DATABASE_NAME.test(database)) {
    throw new Error(`MYSQL_URL must name a database of letters, digits and _ (got "${database}")`)
  }
  parsed.pathname = '/'
  return { serverUrl: parsed.toString(), database }
}

/** The MySQL URL `url` with its database replaced by `database` (same server, user and options). */
export function databaseUrl(url: string, database: string): string {
  if (!DATABASE_NAME.test(database)) throw new Error(`a database name is letters, digits and _ (got "${database}")`)
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

const sessionOptions: PoolOptions = {
  // Dates travel as UTC both ways; NOW(3) on the server is the clock holds expire by.
  timezone: 'Z',
  decimalNumbers: true,
  supportBigNumbers: true,
  bigNumberStrings: false,
  dateStrings: false,
}

/** Creates the database named in the URL when it is missing. */
export async function ensureDatabase(url: string): Promise<void> {
  const { serverUrl, database } = parseMysqlUrl(url)
  const connection = createConnection({ uri: serverUrl, ...sessionOptions }).promise()
  try {
    await connection.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4`)
  } finally {
    await connection.end()
  }
}

/** Drops a database; used by tests that made their own. */
export async function dropDatabase(url: string): Promise<void> {
  const { serverUrl, database } = parseMysqlUrl(url)
  const connection = createConnection({ uri: serverUrl }).promise()
  try {
    await connection.query(`DROP DATABASE IF EXISTS \`${database}\``)
  } finally {
    await connection.end()
  }
}

/** A mysql2 pool whose sessions run in UTC. */
export function createMysqlPool(url: string, connectionLimit: number): Pool {
  const pool = createPool({
    uri: url,
    connectionLimit,
    // Unbounded: how long a request may wait is decided by time (SheddingPool), not by a count.
    queueLimit: 0,
    maxIdle: connectionLimit,
    enableKeepAlive: true,
    connectTimeout: 5000,
    ...sessionOptions,
  })
  // Session time zone UTC, so CURRENT_TIMESTAMP defaults and NOW(3) agree with the UTC dates
  // mysql2 sends; queued before any other query on the new connection. GROUP_CONCAT packs a seat
  // map into one string (about 7 bytes a seat): 16 MB holds millions of seats, where MySQL's
  // default of 1,024 bytes would cut a hall of 150.
  pool.on('connection', (connection) => {
    connection.query("SET time_zone = '+00:00', group_concat_max_len = 16777216")
  })
  return pool
}

export function createDb(url: string, connectionLimit: number, pool: MysqlPool = createMysqlPool(url, connectionLimit)): Kysely<Database> {
  return new Kysely<Database>({ dialect: new MysqlDialect({ pool }) })
}

/** A request refused a MySQL connection because the pool's wait queue stood too long (503). */
export class PoolOverloadedError extends Error {
  constructor() {
    super('Too long a wait for a MySQL connection')
    this.name = 'PoolOverloadedError'
  }
}

interface Waiter {
  since: number
  callback: (error: unknown, connection: MysqlPoolConnection) => void
}

/**
 * The pool Kysely takes connections from, timing each wait for one (CoDel on the wait queue).
 * It keeps the wait line itself and passes mysql2 no more requests than the pool has connections,
 * so it decides who is served next. Every SHED_SAMPLE_MS the oldest waiter's wait is observed.
 * Once waits stayed above the target for the interval the pool is overloaded until its line
 * empties, and meanwhile:
 * - a waiter that has waited the target is refused with PoolOverloadedError, and `standing`
 *   tells the worker's door to refuse new requests while the oldest waiter has waited a sample
 *   period: a standing queue turns into fast 503s and stays short, while a burst that drains
 *   within the target is served whole. (A waiter has had its routing and Redis work done, and
 *   the newest are served first, so it is refused only once it is as late as a request may be.)
 * - a freed connection goes to the newest waiter, not the oldest (adaptive LIFO, "Fail at
 *   Scale"): under overload the newest waiter is the likeliest to still be within its client's
 *   deadline, while the oldest has likely given up. Outside overload the line is FIFO.
 * Without `shed` it only passes requests through.
 */
export class SheddingPool implements MysqlPool {
  readonly #codel: Codel | undefined
  readonly #limit: number
  /** Requests passed to mysql2 and not released yet: at most `#limit`. */
  #out = 0
  /** The wait line, oldest first, from `#head` on. */
  #line: Array<Waiter | undefined> = []
  #head = 0
  readonly #timer: NodeJS.Timeout | undefined
  /** The connections whose release this pool already hears about... */
  readonly #watched = new WeakSet<MysqlPoolConnection>()
  /** ... and those it lent out now (mysql2's own pool.query lends connections too). */
  readonly #lent = new Set<MysqlPoolConnection>()

  constructor(
    readonly pool: Pool,
    shed?: { targetMs: number; intervalMs: number },
  ) {
    this.#limit = (pool as unknown as { config: { connectionLimit: number } }).config.connectionLimit
    if (!shed) return
    this.#codel = new Codel(shed.targetMs, shed.intervalMs)
    this.#timer = setInterval(() => this.#sample(), SHED_SAMPLE_MS).unref()
  }

  /**
   * Whether a new request would be refused a connection: the pool is overloaded and its queue is
   * not moving within the short timeout. The worker then sheds it before it does any work.
   */
  get standing(): boolean {
    if (!this.overloaded) return false
    return performance.now() - this.#oldestSince() > SHED_SAMPLE_MS
  }

  /** Waits stood above the target for the interval, and the line has not emptied since. */
  get overloaded(): boolean {
    return this.#codel?.overloaded ?? false
  }

  /** Requests waiting for a connection. */
  get waiting(): number {
    return this.#line.length - this.#head
  }

  getConnection(callback: (error: unknown, connection: MysqlPoolConnection) => void): void {
    if (!this.#codel) return this.pool.getConnection(callback)
    if (this.#out < this.#limit && this.waiting === 0) return this.#take(callback)
    this.#line.push({ since: performance.now(), callback })
  }

  end(callback: (error: unknown) => void): void {
    clearInterval(this.#timer)
    // As mysql2 answers its own waiters when it closes: nobody is left waiting for ever.
    for (const waiter of this.#line.splice(this.#head)) waiter?.callback(new Error('Pool is closed.'), undefined as never)
    this.#head = 0
    this.#line = []
    this.pool.end(callback)
  }

  #take(callback: Waiter['callback']): void {
    this.#out++
    this.pool.getConnection((error, connection) => {
      if (error) {
        this.#returned()
        return callback(error, connection)
      }
      this.#watch(connection)
      this.#lent.add(connection)
      callback(null, connection)
    })
  }

  /** Hears each connection's release once, however often it is lent out. */
  #watch(connection: MysqlPoolConnection): void {
    if (this.#watched.has(connection)) return
    this.#watched.add(connection)
    const release = connection.release.bind(connection)
    connection.release = () => {
      release()
      if (this.#lent.delete(connection)) this.#returned()
    }
  }

  #returned(): void {
    this.#out--
    while (this.#out < this.#limit && this.waiting > 0) this.#take(this.#next().callback)
  }

  /** The next waiter to serve, out of the line: the oldest, or the newest while overloaded. */
  #next(): Waiter {
    if (this.#codel!.overloaded) return this.#line.pop()!
    const waiter = this.#line[this.#head]!
    this.#line[this.#head++] = undefined
    if (this.#head === this.#line.length) (this.#line = []), (this.#head = 0)
    else if (this.#head > 1024 && this.#head * 2 > this.#line.length) (this.#line = this.#line.slice(this.#head)), (this.#head = 0)
    return waiter
  }

  #oldestSince(): number {
    return this.#line[this.#head]?.since ?? Infinity
  }

  #sample(): void {
    const codel = this.#codel!
    const now = performance.now()
    // Drained only when nobody waits and a connection is free: refused waiters leave the line, and
    // an empty line in front of a pool whose every connection is still taken is no relief.
    if (this.waiting > 0) codel.observe(now - this.#oldestSince(), now)
    else if (this.#out < this.#limit) codel.drained()
    if (!codel.overloaded) return
    // Oldest first: everyone after a waiter younger than the target is younger still.
    while (this.waiting > 0 && now - this.#oldestSince() >= codel.targetMs) {
      const waiter = this.#line[this.#head]!
      this.#line[this.#head++] = undefined
      waiter.callback(new PoolOverloadedError(), undefined as never)
    }
    if (this.#head === this.#line.length) (this.#line = []), (this.#head = 0)
  }
}

export interface PoolUsage {
  open: number
  idle: number
  waiting: number
}

/**
 * How busy a pool is. mysql2 keeps these counts in fields it does not document, so they are read
 * defensively: a mysql2 that renames them yields zeros rather than an error.
 */
export function poolUsage(pool: Pool): PoolUsage {
  const internals = pool as unknown as Record<string, { length?: number } | undefined>
  return {
    open: internals._allConnections?.length ?? 0,
    idle: internals._freeConnections?.length ?? 0,
    waiting: internals._connectionQueue?.length ?? 0,
  }
}
