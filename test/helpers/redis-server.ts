import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, openSync } from 'node:fs'
import { resolve } from 'node:path'
import { Redis } from 'ioredis'
import { freePort } from '../../src/runtime/services.js'
import { waitFor } from './wait.js'

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

  /** Starts redis-server with `flags` added and waits until it answers PING. */
  static async start(dir: string, flags: string[] = []): Promise<RedisServer> {
    const server = new RedisServer(dir, await freePort(), flags)
    await server.restart()
    return server
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
        if (!this.running) throw new Error(`redis-server on ${this.port} exited; see ${this.dir}/redis.log`)
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
