import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, connect, type Socket } from 'node:net'
import type { Test } from 'tap'
import { createConnection } from 'mysql2/promise'
import type { Config } from '../../src/config.js'
import { parseMysqlUrl } from '../../src/db/connection.js'
import { freePort, redisAnswers } from '../../src/runtime/services.js'
import { waitFor } from './wait.js'

export interface PrivateRedis {
  url: string
  port: number
  /** SIGKILL: the data goes with it (no persistence), as after a crash. */
  kill: () => Promise<void>
  /** A fresh redis-server on the same port; resolves once it answers PING. */
  start: () => Promise<void>
}

/**
 * A redis-server of the test's own on a free port, so it can be stopped without touching the
 * shared one. Whatever instance is running when the test ends is SIGKILLed by its pid.
 */
export async function startPrivateRedis(t: Test): Promise<PrivateRedis> {
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | undefined

  const kill = async () => {
    const running = child
    child = undefined
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((done) => running.once('exit', done))
    running.kill('SIGKILL')
    await exited
  }
  const start = async () => {
    if (child) throw new Error('the private redis-server is already running')
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    })
    child = started
    await waitFor(`redis-server on port ${port} to answer PING`, async () => {
      if (started.exitCode !== null) throw new Error(`redis-server on port ${port} exited with code ${started.exitCode}`)
      return redisAnswers(url)
    })
  }
  t.teardown(kill)
  await start()
  return { url, port, kill, start }
}

export interface TcpProxy {
  port: number
  /** Connections currently piped through. */
  open: () => number
  /** Resets every piped connection and refuses new ones: the database is unreachable. */
  cut: () => Promise<void>
  /** Accepts connections again on the same port. */
  restore: () => Promise<void>
}

/**
 * A TCP proxy in the test process between the app and a server, which the test can cut and
 * restore: an outage of MySQL as the app sees it, without touching the shared MySQL.
 */
export async function startTcpProxy(t: Test, target: { host: string; port: number }): Promise<TcpProxy> {
  const port = await freePort()
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {})
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  const listen = () =>
    new Promise<void>((done, fail) => {
      server.once('error', fail)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', fail)
        done()
      })
    })
  const cut = async () => {
    const closed = new Promise<void>((done) => server.close(() => done()))
    for (const socket of sockets) socket.resetAndDestroy()
    await closed
  }
  t.teardown(async () => {
    if (server.listening) await cut()
  })
  await listen()
  return { port, open: () => sockets.size / 2, cut, restore: listen }
}

/** The MySQL URL `config` names, with the host and port replaced (to route it through a proxy). */
export function mysqlUrlVia(config: Config, port: number): string {
  const url = new URL(config.MYSQL_URL)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return url.toString()
}

export function mysqlTarget(config: Config): { host: string; port: number } {
  const url = new URL(config.MYSQL_URL)
  return { host: url.hostname, port: Number(url.port || 3306) }
}

/**
 * Kills, from a connection of its own, every connection whose session uses the config's
 * database: the app's pools (a test that must not be hit watches through `observerDb`).
 */
export async function appConnectionKiller(t: Test, config: Config) {
  const { serverUrl, database } = parseMysqlUrl(config.MYSQL_URL)
  const admin = await createConnection({ uri: serverUrl })
  t.teardown(() => admin.end())
  return {
    async killAll(): Promise<number> {
      const [rows] = await admin.query('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [database])
      let killed = 0
      for (const { ID } of rows as { ID: number }[]) {
        // A connection may close on its own between the listing and the KILL.
        await admin.query(`KILL ${Number(ID)}`).then(
          () => killed++,
          () => {},
        )
      }
      return killed
    },
  }
}
