import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { resolve } from 'node:path'
import { Redis } from 'ioredis'
import { freePort } from '../../src/runtime/services.js'
import { waitFor } from './wait.js'

const CLUSTER_BUS_OFFSET = 10_000

/** Whether nothing listens on `port` of 127.0.0.1 now. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer()
    probe.once('error', () => done(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)))
  })
}

/** The last lines of a log, on one line. */
function tail(file: string): string {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : ['(no log)']
  return lines.slice(-3).join(' | ')
}

/** A free port whose cluster-bus port (+10000) is free too. */
async function freePortWithBus(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port + CLUSTER_BUS_OFFSET <= 65_535 && (await portIsFree(port + CLUSTER_BUS_OFFSET))) return port
  }
}

/**
 * A private redis-server on a free port with its data under `dir`, started by PID (never
 * daemonized). `restart()` brings it back on the same port and data, as after a crash.
 */
export class RedisServer {
  private child?: ChildProcess

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly flags: string[],
  ) {}

  /**
   * Starts redis-server with `flags` added and waits until it answers PING. A cluster node also
   * listens on its port + 10000 (the cluster bus), so both must be free. Either can still be taken
   * between this check and redis-server's bind (another process's outgoing connection lands on
   * any port of the ephemeral range): a server that exits while starting is tried again on new
   * ports, up to three times.
   */
  static async start(dir: string, flags: string[] = []): Promise<RedisServer> {
    const bus = flags.includes('--cluster-enabled')
    for (let attempt = 1; ; attempt++) {
      const server = new RedisServer(dir, await (bus ? freePortWithBus() : freePort()), flags)
      try {
        await server.restart()
        return server
      } catch (error) {
        if (attempt === 3 || server.running) throw error
        // The node configuration a failed start wrote names its ports: the next start writes its own.
        rmSync(resolve(dir, 'nodes.conf'), { force: true })
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** The server's process id while it runs (its CPU can then be read from /proc). */
  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  async restart(): Promise<void> {
    mkdirSync(this.dir, { recursive: true })
    const log = openSync(resolve(this.dir, 'redis.log'), 'a')
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--daemonize', 'no', '--dir', this.dir, '--save', '', ...this.flags], {
      stdio: ['ignore', log, log],
    })
    child.on('error', () => {})
    this.child = child
    await waitFor(
      `redis-server on ${this.port} (log in ${this.dir})`,
      async () => {
        // The log's end goes in the error: a cluster's folder is removed when its start fails.
        if (!this.running) throw new Error(`redis-server on ${this.port} exited: ${tail(resolve(this.dir, 'redis.log'))}`)
        return this.answers()
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    )
  }

  /** PING answers: up, and done loading its data. */
  private async answers(): Promise<boolean> {
    const probe = new Redis({ port: this.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      return (await probe.ping()) === 'PONG'
    } catch {
      return false
    } finally {
      probe.disconnect()
    }
  }

  /** Stops it by PID: SIGTERM shuts down cleanly, SIGKILL is a crash. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    if (!child || !this.running) return
    await new Promise<void>((done) => {
      child.once('exit', () => done())
      child.kill(signal)
    })
  }
}
