import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdirSync, openSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { createConnection, type Connection } from 'mysql2/promise'
import { freePort } from '../../src/runtime/services.js'
import { waitFor } from './wait.js'

const run = promisify(execFile)
const READER = 'seatrush_reader'
// mariadbd refuses to run as root unless told to.
const asRoot = process.getuid?.() === 0 ? ['--user=root'] : []

/**
 * A private mariadbd on a free port with its data under `dir`, started by PID. `restart()` brings
 * the same data back on the same port, as after a crash.
 */
export class MariaDb {
  private child?: ChildProcess
  readonly port: number

  private constructor(
    readonly dir: string,
    port: number,
    private readonly flags: string[],
  ) {
    this.port = port
  }

  /** Initialises `dir` (mariadb-install-db) and starts mariadbd on it with `flags` added. */
  static async start(dir: string, flags: string[] = []): Promise<MariaDb> {
    mkdirSync(resolve(dir, 'tmp'), { recursive: true })
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${resolve(dir, 'data')}`, `--tmpdir=${resolve(dir, 'tmp')}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...asRoot])
    const server = new MariaDb(dir, await freePort(), flags)
    await server.restart()
    return server
  }

  /** A URL for database `database` on this server, as root. */
  url(database: string): string {
    return `mysql://root@127.0.0.1:${this.port}/${database}`
  }

  /** The server's process id while it runs (its CPU can then be read from /proc). */
  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  async restart(): Promise<void> {
    const log = openSync(resolve(this.dir, 'mariadbd.log'), 'a')
    const child = spawn(
      'mariadbd',
      [
        '--no-defaults', `--datadir=${resolve(this.dir, 'data')}`, `--port=${this.port}`, '--bind-address=127.0.0.1',
        `--socket=${resolve(this.dir, 'mariadbd.sock')}`, `--pid-file=${resolve(this.dir, 'mariadbd.pid')}`,
        // A temporary directory of its own: mariadbd deletes every #sql* file in its tmpdir as it
        // starts, which in a shared /tmp are the temporary tables of other servers' running queries.
        `--tmpdir=${resolve(this.dir, 'tmp')}`,
        '--max-connections=500', '--innodb-buffer-pool-size=32M', ...asRoot, ...this.flags,
      ],
      { stdio: ['ignore', log, log] },
    )
    child.on('error', () => {})
    this.child = child
    await waitFor(
      `mariadbd on ${this.port} (log in ${this.dir})`,
      async () => {
        if (!this.running) throw new Error(`mariadbd on ${this.port} exited; see ${this.dir}/mariadbd.log`)
        const connection = await this.connect().catch(() => undefined)
        await connection?.end()
        return connection !== undefined
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    )
  }

  /** A root connection to the server (no database selected). */
  connect(): Promise<Connection> {
    return createConnection({ host: '127.0.0.1', port: this.port, user: 'root', connectTimeout: 2000 })
  }

  /** Runs `sql` on a connection of its own. */
  async query<T = Record<string, unknown>[]>(sql: string): Promise<T> {
    const connection = await this.connect()
    try {
      const [rows] = await connection.query(sql)
      return rows as T
    } finally {
      await connection.end()
    }
  }

  /** Stops mariadbd by PID: SIGTERM is a clean shutdown, SIGKILL a crash. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child
    if (!child || !this.running) return
    await new Promise<void>((done) => {
      child.once('exit', () => done())
      child.kill(signal)
    })
  }
}

/** A primary with binary logging and a replica following it by GTID, under `.data/replication-<id>/`. */
export class ReplicatedMariaDb {
  private constructor(
    readonly dir: string,
    readonly primary: MariaDb,
    readonly replica: MariaDb,
  ) {}

  static async start(): Promise<ReplicatedMariaDb> {
    const dir = resolve('.data', `replication-${randomBytes(4).toString('hex')}`)
    const started: MariaDb[] = []
    try {
      // One after the other: two mariadb-install-db runs at once have collided on a busy machine,
      // and a server started beside one that failed would be left running.
      const primary = await MariaDb.start(resolve(dir, 'primary'), ['--server-id=1', '--log-bin=primary-bin', '--binlog-format=ROW'])
      started.push(primary)
      // userstat: the replica counts each user's SELECTs and writes (INFORMATION_SCHEMA.USER_STATISTICS).
      const replica = await MariaDb.start(resolve(dir, 'replica'), ['--server-id=2', '--relay-log=replica-relay', '--userstat=1'])
      started.push(replica)
      await replica.query(
        `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primary.port}, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1`,
      )
      await replica.query('START SLAVE')
      // The app's replica user may only read, as in production; created on the primary, it replicates.
      await primary.query(`CREATE USER '${READER}'@'127.0.0.1'`)
      await primary.query(`GRANT SELECT ON *.* TO '${READER}'@'127.0.0.1'`)
      const pair = new ReplicatedMariaDb(dir, primary, replica)
      await pair.waitUntilCaughtUp()
      return pair
    } catch (error) {
      await Promise.all(started.map((server) => server.stop('SIGKILL')))
      rmSync(dir, { recursive: true, force: true })
      throw error
    }
  }

  /** Until the replica has applied everything the primary has logged so far. */
  async waitUntilCaughtUp(timeoutMs = 30_000): Promise<void> {
    const [{ pos }] = await this.primary.query<[{ pos: string }]>('SELECT @@gtid_binlog_pos AS pos')
    await waitFor(
      'the replica to catch up',
      async () => {
        const [row] = await this.replica.query<{ caughtUp: number | null }[]>(`SELECT MASTER_GTID_WAIT('${pos}', 0) = 0 AS caughtUp`)
        return row?.caughtUp === 1
      },
      { timeoutMs, intervalMs: 100 },
    )
  }

  /** A read-only URL for database `database` on the replica, as the app should use it. */
  replicaUrl(database: string): string {
    return `mysql://${READER}@127.0.0.1:${this.replica.port}/${database}`
  }

  /** What the replica's read-only user has run there, by the replica's own count. */
  async readerCommands(): Promise<{ selects: number; writes: number }> {
    const [row] = await this.replica.query<{ selects: number; writes: number }[]>(
      `SELECT SELECT_COMMANDS AS selects, UPDATE_COMMANDS AS writes FROM INFORMATION_SCHEMA.USER_STATISTICS WHERE USER = '${READER}'`,
    )
    return { selects: Number(row?.selects ?? 0), writes: Number(row?.writes ?? 0) }
  }

  async stop(): Promise<void> {
    await Promise.all([this.primary.stop('SIGKILL'), this.replica.stop('SIGKILL')])
    rmSync(this.dir, { recursive: true, force: true })
  }
}
