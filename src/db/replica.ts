import {
  Kysely,
  MysqlAdapter,
  MysqlDriver,
  MysqlIntrospector,
  MysqlQueryCompiler,
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
} from 'kysely'
import type { Pool } from 'mysql2'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import { createMysqlPool } from './connection.js'
import type { Database } from './schema.js'

/** How often the primary's heartbeat row is written and the replica's copy read. */
export const HEARTBEAT_INTERVAL_MS = 200

export interface ReplicaStatus {
  /** Where a read through `dbRead` goes now. */
  target: 'replica' | 'primary'
  /** How far behind the primary the replica was at the last check, when it answered. */
  lagMs?: number
  /** Why reads skip the replica. */
  reason?: string
}

export interface ReadDb {
  /** Kysely for reads that may be a little stale; never for a transaction. */
  db: Kysely<Database>
  status: () => ReplicaStatus
  close: () => Promise<void>
}

// The heartbeat lives in the app's database, so it replicates with the data it vouches for. It is
// created here, not by a migration, because only deployments with a replica need it.
const CREATE_HEARTBEAT =
  'CREATE TABLE IF NOT EXISTS replica_heartbeat (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, beat DATETIME(6) NOT NULL)'
const WRITE_HEARTBEAT = 'INSERT INTO replica_heartbeat (id, beat) VALUES (1, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE beat = VALUES(beat)'
const READ_LAG = 'SELECT TIMESTAMPDIFF(MICROSECOND, beat, UTC_TIMESTAMP(6)) AS lagUs FROM replica_heartbeat WHERE id = 1'

/**
 * Reads for `dbRead`. Without MYSQL_REPLICA_URL they are the primary's `db`. With it, every
 * HEARTBEAT_INTERVAL_MS the primary's heartbeat row is stamped with its clock and the replica's
 * copy is compared with the replica's clock (pt-heartbeat's method: millisecond resolution, and
 * it counts a stopped SQL thread as lag, which Seconds_Behind_Master reports as NULL; it assumes
 * the two servers' clocks agree, as NTP keeps them within a few ms). Reads go to the replica
 * only while its last check answered within REPLICA_MAX_LAG_MS; a read the replica fails is run
 * again on the primary, so a replica going down costs time, not an error.
 */
export function createReadDb(primary: Kysely<Database>, primaryPool: Pool, config: Config, log: FastifyBaseLogger): ReadDb {
  const replicaUrl = config.MYSQL_REPLICA_URL
  if (!replicaUrl) {
    return { db: primary, status: () => ({ target: 'primary', reason: 'MYSQL_REPLICA_URL is not set' }), close: async () => {} }
  }
  const maxLagMs = config.REPLICA_MAX_LAG_MS
  let status: ReplicaStatus = { target: 'primary', reason: 'not checked yet' }
  const bypass = (reason: string, lagMs?: number) => {
    if (status.target === 'replica') log.warn({ reason, lagMs }, 'reads leave the replica for the primary')
    status = { target: 'primary', lagMs, reason }
  }

  // The heartbeat has a connection of its own: a busy app pool must not look like replica lag.
  const heartbeatPool = createMysqlPool(config.MYSQL_URL, 1)
  const replicaPool = createMysqlPool(replicaUrl, config.MYSQL_POOL_SIZE)
  let tableReady = false
  const check = async () => {
    try {
      if (!tableReady) await heartbeatPool.promise().query(CREATE_HEARTBEAT)
      tableReady = true
      await heartbeatPool.promise().query(WRITE_HEARTBEAT)
    } catch (error) {
      log.debug({ err: error }, 'replica heartbeat not written')
    }
    try {
      const [rows] = await replicaPool.promise().query({ sql: READ_LAG, timeout: maxLagMs })
      const lagUs = (rows as { lagUs: number | null }[])[0]?.lagUs
      if (lagUs === undefined || lagUs === null) return bypass('no heartbeat on the replica yet')
      const lagMs = Math.max(0, Number(lagUs) / 1000)
      if (lagMs > maxLagMs) return bypass(`replica ${Math.round(lagMs)} ms behind, above REPLICA_MAX_LAG_MS`, lagMs)
      if (status.target === 'primary') log.info({ lagMs }, 'reads go to the replica')
      status = { target: 'replica', lagMs }
    } catch (error) {
      bypass(`replica unavailable: ${(error as Error).message}`)
    }
  }
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    void check().finally(() => (running = false))
  }, HEARTBEAT_INTERVAL_MS)
  timer.unref()

  const driver = new ReadRoutingDriver(new MysqlDriver({ pool: primaryPool }), new MysqlDriver({ pool: replicaPool }), {
    useReplica: () => status.target === 'replica',
    replicaFailed: (error) => bypass(`replica read failed: ${error.message}`),
  })
  const db = new Kysely<Database>({
    dialect: {
      createAdapter: () => new MysqlAdapter(),
      createDriver: () => driver,
      createIntrospector: (kysely) => new MysqlIntrospector(kysely),
      createQueryCompiler: () => new MysqlQueryCompiler(),
    },
  })
  return {
    db,
    status: () => status,
    close: async () => {
      clearInterval(timer)
      await db.destroy()
      await Promise.all([heartbeatPool, replicaPool].map((pool) => new Promise<void>((done) => pool.end(() => done()))))
    },
  }
}

interface Routing {
  useReplica: () => boolean
  replicaFailed: (error: Error) => void
}

/**
 * Hands out a replica connection while `useReplica()` says so, else a primary one. Transactions
 * are refused: what runs in one (holds, payments, points) must read what it writes, on the primary.
 */
class ReadRoutingDriver implements Driver {
  constructor(
    private readonly primary: MysqlDriver,
    private readonly replica: MysqlDriver,
    private readonly routing: Routing,
  ) {}

  async init(): Promise<void> {
    await Promise.all([this.primary.init(), this.replica.init()])
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (this.routing.useReplica()) {
      try {
        return new ReplicaConnection(await this.replica.acquireConnection(), this.primary, this.routing)
      } catch (error) {
        this.routing.replicaFailed(error as Error)
      }
    }
    return this.primary.acquireConnection()
  }

  async beginTransaction(): Promise<void> {
    throw new Error('dbRead is for reads outside transactions; run transactions on db')
  }

  async commitTransaction(): Promise<void> {}

  async rollbackTransaction(): Promise<void> {}

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    if (connection instanceof ReplicaConnection) await this.replica.releaseConnection(connection.inner as never)
    else await this.primary.releaseConnection(connection as never)
  }

  /** Nothing: the primary's pool belongs to `db`, the replica's to `createReadDb`, which ends it. */
  async destroy(): Promise<void> {}
}

/** A replica connection whose failed reads are run again on the primary (reads are safe to repeat). */
class ReplicaConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly primary: MysqlDriver,
    private readonly routing: Routing,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(query)
    } catch (error) {
      this.routing.replicaFailed(error as Error)
      const connection = await this.primary.acquireConnection()
      try {
        return await connection.executeQuery<R>(query)
      } finally {
        await this.primary.releaseConnection(connection as never)
      }
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize)
  }
}
