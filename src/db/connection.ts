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
  // mysql2 sends; queued before any other query on the new connection.
  pool.on('connection', (connection) => {
    connection.query("SET time_zone = '+00:00'")
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
  /** Unset once the waiter was refused; the connection it is given later goes straight back. */
  callback: ((error: unknown, connection: MysqlPoolConnection) => void) | undefined
}

/**
 * The pool Kysely takes connections from, timing each wait for one (CoDel on the wait queue).
 * Every SHED_SAMPLE_MS the oldest waiter's wait is observed. Once waits stayed above the target
 * for the interval the pool is overloaded until its queue empties, and meanwhile a waiter that
 * has waited a sample period is refused with PoolOverloadedError: a standing queue turns into
 * fast 503s and stays short, while a burst that drains within the target is served whole.
 * Without `shed` it only passes requests through.
 */
export class SheddingPool implements MysqlPool {
  readonly #codel: Codel | undefined
  // In arrival order, as mysql2 serves them; a refused waiter stays until mysql2 reaches it.
  readonly #waiters = new Set<Waiter>()
  readonly #timer: NodeJS.Timeout | undefined

  constructor(
    readonly pool: Pool,
    shed?: { targetMs: number; intervalMs: number },
  ) {
    if (!shed) return
    this.#codel = new Codel(shed.targetMs, shed.intervalMs)
    this.#timer = setInterval(() => this.#sample(), SHED_SAMPLE_MS).unref()
  }

  /**
   * Whether a new request would be refused a connection: the pool is overloaded and its queue is
   * not moving within the short timeout. The worker then sheds it before it does any work.
   */
  get standing(): boolean {
    if (!this.#codel?.overloaded) return false
    return performance.now() - this.#oldestSince() > SHED_SAMPLE_MS
  }

  getConnection(callback: (error: unknown, connection: MysqlPoolConnection) => void): void {
    if (!this.#codel) return this.pool.getConnection(callback)
    const waiter: Waiter = { since: performance.now(), callback }
    this.#waiters.add(waiter)
    this.pool.getConnection((error, connection) => {
      this.#waiters.delete(waiter)
      if (waiter.callback) return waiter.callback(error, connection)
      if (!error) connection.release()
    })
  }

  end(callback: (error: unknown) => void): void {
    clearInterval(this.#timer)
    this.pool.end(callback)
  }

  #oldestSince(): number {
    const oldest = this.#waiters.values().next().value as Waiter | undefined
    return oldest?.since ?? Infinity
  }

  #sample(): void {
    const codel = this.#codel!
    const now = performance.now()
    if (this.#waiters.size === 0) codel.drained()
    else codel.observe(now - this.#oldestSince(), now)
    if (!codel.overloaded) return
    for (const waiter of this.#waiters) {
      // Arrival order: everyone after a waiter younger than a sample period is younger still.
      if (now - waiter.since < SHED_SAMPLE_MS) break
      const callback = waiter.callback
      if (!callback) continue
      waiter.callback = undefined
      callback(new PoolOverloadedError(), undefined as never)
    }
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
