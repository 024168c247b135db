import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { createConnection } from 'mysql2/promise'
import { Redis } from 'ioredis'
import { parseMysqlUrl } from '../db/connection.js'

export interface Services {
  mysqlUrl: string
  redisUrl: string
  /** Human-readable description of where each service came from. */
  origin: { mysql: string; redis: string }
  /** Stops the private instances this call started (none when the URLs answered). */
  stop: () => Promise<void>
}

export interface DiscoveryOptions {
  mysqlUrl: string
  redisUrl: string
  embedded: 'auto' | 'never'
  /** Folder for the private instances' data and logs. */
  dataDir?: string
  log?: (message: string) => void
  /** Cancels the discovery: a private instance being waited for is stopped with the others. */
  signal?: AbortSignal
}

export class ServiceDiscoveryError extends Error {
  override name = 'ServiceDiscoveryError'
}

const SEARCH_PATH = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/opt/homebrew/bin']

function findBinary(...names: string[]): string | undefined {
  for (const name of names) {
    for (const folder of SEARCH_PATH) {
      if (folder && existsSync(join(folder, name))) return join(folder, name)
    }
  }
  return undefined
}

async function mysqlAnswers(url: string): Promise<boolean> {
  const { serverUrl } = parseMysqlUrl(url)
  try {
    const connection = await createConnection({ uri: serverUrl, connectTimeout: 1500 })
    await connection.ping()
    await connection.end()
    return true
  } catch {
    return false
  }
}

export async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1500, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return true
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolvePort(port))
    })
  })
}

async function waitFor(check: () => Promise<boolean>, child: ChildProcess, what: string, logFile: string, signal?: AbortSignal, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new ServiceDiscoveryError(`start-up cancelled while waiting for ${what}`)
    if (child.exitCode !== null) {
      throw new ServiceDiscoveryError(`${what} exited with code ${child.exitCode}; see ${logFile}:\n${tail(logFile)}`)
    }
    if (await check()) return
    await new Promise((r) => setTimeout(r, 250))
  }
  child.kill('SIGKILL')
  throw new ServiceDiscoveryError(`${what} did not answer within ${timeoutMs / 1000}s; see ${logFile}`)
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.once('exit', () => {
      clearTimeout(timer)
      done()
    })
    child.kill('SIGTERM')
  })
}

const runAsRoot = process.getuid?.() === 0

async function startMysql(dataDir: string, database: string, log: (m: string) => void, onStart: (child: ChildProcess) => void, signal?: AbortSignal) {
  const mariadbd = findBinary('mariadbd')
  const mysqld = mariadbd ?? findBinary('mysqld')
  if (!mysqld) return undefined
  const datadir = resolve(dataDir, 'mysql')
  const logFile = resolve(dataDir, 'mysql.log')
  const userFlag = runAsRoot ? ['--user=root'] : []
  // A temporary directory of its own: mysqld deletes every #sql* file in its tmpdir as it starts,
  // which in a shared /tmp are the temporary tables of other servers' running queries.
  const tmpFlag = `--tmpdir=${resolve(dataDir, 'mysql-tmp')}`
  mkdirSync(resolve(dataDir, 'mysql-tmp'), { recursive: true })
  if (!existsSync(join(datadir, 'mysql'))) {
    log(`initialising a private database in ${datadir}`)
    const installDb = findBinary('mariadb-install-db', 'mysql_install_db')
    const init =
      mariadbd && installDb
        ? spawnSync(installDb, ['--no-defaults', `--datadir=${datadir}`, tmpFlag, '--auth-root-authentication-method=normal', '--skip-test-db', ...userFlag], { encoding: 'utf8' })
        : spawnSync(mysqld, ['--no-defaults', '--initialize-insecure', `--datadir=${datadir}`, tmpFlag, ...userFlag], { encoding: 'utf8' })
    if (init.status !== 0) {
      throw new ServiceDiscoveryError(`initialising ${datadir} failed:\n${init.stderr || init.stdout}`)
    }
  }
  const port = await freePort()
  const flavourFlags = mariadbd ? ['--skip-log-bin'] : ['--disable-log-bin', '--mysqlx=OFF']
  const child = spawn(
    mysqld,
    [
      '--no-defaults',
      `--datadir=${datadir}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(tmpdir(), `seatrush-mysql-${port}.sock`)}`,
      `--pid-file=${resolve(dataDir, 'mysql.pid')}`,
      tmpFlag,
      '--max-connections=1000',
      ...flavourFlags,
      ...userFlag,
    ],
    { stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')] },
  )
  onStart(child)
  const url = `mysql://root@127.0.0.1:${port}/${database}`
  await waitFor(() => mysqlAnswers(url), child, `${mysqld} on port ${port}`, logFile, signal)
  return { url, child, origin: `private ${mariadbd ? 'mariadbd' : 'mysqld'} on 127.0.0.1:${port} (data in ${datadir})` }
}

async function startRedis(dataDir: string, onStart: (child: ChildProcess) => void, signal?: AbortSignal) {
  const redisServer = findBinary('redis-server')
  if (!redisServer) return undefined
  const dir = resolve(dataDir, 'redis')
  const logFile = resolve(dataDir, 'redis.log')
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  // The line and the active slots survive a restart: the append-only file is written before each
  // reply, so a killed redis-server loses nothing it answered; a crash of the machine loses up to
  // the last second (appendfsync everysec).
  const persistence = ['--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '']
  const child = spawn(redisServer, ['--port', String(port), '--bind', '127.0.0.1', ...persistence, '--dir', dir], {
    stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')],
  })
  onStart(child)
  const url = `redis://127.0.0.1:${port}`
  await waitFor(() => redisAnswers(url), child, `redis-server on port ${port}`, logFile, signal)
  return { url, child, origin: `private redis-server on 127.0.0.1:${port}` }
}

const HOW_TO_GET_THEM =
  'Start them with `docker compose up -d mysql redis`, or install them: ' +
  '`apt install mariadb-server redis-server` (Debian/Ubuntu) or `brew install mysql redis` (macOS), ' +
  'and seatrush will run private instances under .data/.'

/**
 * Finds MySQL and Redis: the configured URLs when they answer; otherwise, when allowed and the
 * servers are installed, private instances under `.data/` on free ports; otherwise one message
 * that says how to get them.
 */
export async function discoverServices(options: DiscoveryOptions): Promise<Services> {
  const log = options.log ?? (() => {})
  const dataDir = options.dataDir ?? resolve('.data')
  const children: ChildProcess[] = []
  const stop = async () => {
    await Promise.all(children.map(stopChild))
  }
  // Tracked from its spawn, so a child still starting is stopped with the rest on failure or cancel.
  // Should this process end without stop() (process.exit on an error, an uncaught exception), the
  // children get SIGTERM as it goes; only a SIGKILL of this process can orphan them.
  const started = (child: ChildProcess) => {
    children.push(child)
    const orphanGuard = () => void (child.exitCode === null && child.signalCode === null && child.kill('SIGTERM'))
    process.once('exit', orphanGuard)
    child.once('exit', () => process.off('exit', orphanGuard))
  }
  const cancelled = () => {
    if (options.signal?.aborted) throw new ServiceDiscoveryError('start-up cancelled')
  }
  try {
    let mysqlUrl = options.mysqlUrl
    let mysqlOrigin = `MYSQL_URL ${new URL(mysqlUrl).host}`
    if (!(await mysqlAnswers(mysqlUrl))) {
      const missing = `MySQL does not answer at ${new URL(mysqlUrl).host}.`
      if (options.embedded === 'never') throw new ServiceDiscoveryError(`${missing} ${HOW_TO_GET_THEM}`)
      cancelled()
      const mysql = await startMysql(dataDir, parseMysqlUrl(mysqlUrl).database, log, started, options.signal)
      if (!mysql) throw new ServiceDiscoveryError(`${missing} Neither mariadbd nor mysqld is installed. ${HOW_TO_GET_THEM}`)
      mysqlUrl = mysql.url
      mysqlOrigin = mysql.origin
    }
    cancelled()

    let redisUrl = options.redisUrl
    let redisOrigin = `REDIS_URL ${new URL(redisUrl).host}`
    if (!(await redisAnswers(redisUrl))) {
      const missing = `Redis does not answer at ${new URL(redisUrl).host}.`
      if (options.embedded === 'never') throw new ServiceDiscoveryError(`${missing} ${HOW_TO_GET_THEM}`)
      cancelled()
      const redis = await startRedis(dataDir, started, options.signal)
      if (!redis) throw new ServiceDiscoveryError(`${missing} redis-server is not installed. ${HOW_TO_GET_THEM}`)
      redisUrl = redis.url
      redisOrigin = redis.origin
    }
    return { mysqlUrl, redisUrl, origin: { mysql: mysqlOrigin, redis: redisOrigin }, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
