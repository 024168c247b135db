import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import type { Test } from 'tap'
import { configToEnv, type Config } from '../../src/config.js'
import { freePort } from '../../src/runtime/services.js'

const ROOT = resolve(import.meta.dirname, '../..')

/** One line of the server's output: its pino fields when it was JSON, and the raw text. */
export interface LogLine {
  raw: string
  msg?: string
  pid?: number
  [field: string]: unknown
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface ServerProcess {
  baseUrl: string
  port: number
  /** The cluster primary. */
  pid: number
  /** The workers the primary announced in "seatrush is serving". */
  workerPids: number[]
  /** Every line printed so far, stdout and stderr, in arrival order. */
  logs: LogLine[]
  /** Resolves with the first line from index `after` on that matches; rejects after `timeoutMs`. */
  waitForLog(pattern: RegExp | ((line: LogLine) => boolean), options?: { after?: number; timeoutMs?: number }): Promise<LogLine>
  /** Resolves when the primary has exited; rejects after `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<Exit>
  /** SIGTERM, then SIGKILL to anything of it still alive after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<Exit>
}

export interface StartOptions {
  /** Defaults to a free port. */
  port?: number
  /** Extra env for the child, beside the config. */
  env?: Record<string, string>
  readyTimeoutMs?: number
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const delay = (ms: number) => new Promise((done) => setTimeout(done, ms))

/**
 * Starts the real server (`node --import tsx src/main.ts`) as a child process with `config`, and
 * waits until the primary says every worker listens. The child is the leader of its own process
 * group, like a server started from a terminal. Its database must already exist or be creatable;
 * every process of it still alive is SIGKILLed when the test ends.
 */
export async function startServer(t: Test, config: Config, options: StartOptions = {}): Promise<ServerProcess> {
  const port = options.port ?? (await freePort())
  const env = {
    ...process.env,
    ...configToEnv(config),
    PORT: String(port),
    HOST: '127.0.0.1',
    EMBEDDED_SERVICES: 'never',
    // The helper reads the start-up and worker lines, so it needs at least info.
    LOG_LEVEL: config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? config.LOG_LEVEL : 'info',
    ...options.env,
  }
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const pid = child.pid
  if (pid === undefined) throw new Error('the server did not start')

  const logs: LogLine[] = []
  const seenPids = new Set<number>([pid])
  const listeners = new Set<() => void>()
  let exit: Exit | undefined
  const notify = () => listeners.forEach((listener) => listener())

  const collect = (stream: NodeJS.ReadableStream) => {
    let pending = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const raw of lines) {
        if (!raw.trim()) continue
        let line: LogLine = { raw }
        try {
          line = { ...JSON.parse(raw), raw }
        } catch {}
        if (typeof line.pid === 'number') seenPids.add(line.pid)
        logs.push(line)
      }
      notify()
    })
  }
  collect(child.stdout)
  collect(child.stderr)
  child.on('exit', (code, signal) => {
    exit = { code, signal }
    notify()
  })

  const output = () => logs.map((line) => line.raw).join('\n')

  const waitUntil = <T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise((done, fail) => {
      const attempt = () => {
        let value: T | undefined
        try {
          value = check()
        } catch (error) {
          finish()
          fail(error)
          return
        }
        if (value === undefined) return
        finish()
        done(value)
      }
      const timer = setTimeout(() => {
        finish()
        fail(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; server output:\n${output().slice(-4000)}`))
      }, timeoutMs)
      const finish = () => {
        clearTimeout(timer)
        listeners.delete(listener)
      }
      const listener = () => attempt()
      listeners.add(listener)
      attempt()
    })

  const waitForLog: ServerProcess['waitForLog'] = (pattern, { after = 0, timeoutMs = 10_000 } = {}) => {
    const matches = typeof pattern === 'function' ? pattern : (line: LogLine) => pattern.test(line.raw)
    return waitUntil(
      () => {
        const line = logs.slice(after).find(matches)
        if (line) return line
        if (exit) throw new Error(`the server exited (${JSON.stringify(exit)}) before logging ${pattern}; output:\n${output().slice(-4000)}`)
        return undefined
      },
      timeoutMs,
      `a log line matching ${pattern}`,
    )
  }

  const waitForExit = (timeoutMs = 15_000) => waitUntil(() => exit, timeoutMs, 'the server to exit')

  const killAll = () => {
    for (const known of seenPids) {
      if (isAlive(known)) process.kill(known, 'SIGKILL')
    }
  }

  const stop = async (timeoutMs = 15_000): Promise<Exit> => {
    if (!exit) process.kill(pid, 'SIGTERM')
    try {
      return await waitForExit(timeoutMs)
    } finally {
      killAll()
    }
  }

  t.teardown(async () => {
    killAll()
    // Orphaned workers notice their primary is gone on their own; wait briefly so none outlives the test.
    const deadline = Date.now() + 5000
    while ([...seenPids].some(isAlive) && Date.now() < deadline) await delay(50)
  })

  const serving = await waitForLog(/"msg":"seatrush is serving"/, { timeoutMs: options.readyTimeoutMs ?? 30_000 })
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    pid,
    workerPids: serving.pids as number[],
    logs,
    waitForLog,
    waitForExit,
    stop,
  }
}
