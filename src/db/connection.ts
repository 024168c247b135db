import { Kysely, MysqlDialect } from 'kysely'
import { createPool, createConnection, type Pool, type PoolOptions } from 'mysql2'
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
export function createMysqlPool(url: string, connectionLimit: number, queueLimit = 0): Pool {
  const pool = createPool({
    uri: url,
    connectionLimit,
    // 0 queues without bound; otherwise a request finding the queue full fails at once (isPoolSaturated).
    queueLimit,
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

export function createDb(url: string, connectionLimit: number, pool: Pool = createMysqlPool(url, connectionLimit)): Kysely<Database> {
  return new Kysely<Database>({ dialect: new MysqlDialect({ pool }) })
}

/** The error mysql2 fails a query with when the pool's wait queue is full. */
export function isPoolSaturated(error: unknown): boolean {
  return error instanceof Error && error.message === 'Queue limit reached.'
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
