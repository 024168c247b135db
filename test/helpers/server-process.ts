import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import type { Test } from 'tap'
import { configToEnv, type Config } from '../../src/config.js'
import { freePort } from '../../src/runtime/services.js'
import { waitFor } from './wait.js'

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

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface SpawnOptions {
  /** The executable and its arguments: node with its flags and entry, or taskset in front of that. */
  command: string[]
  env: NodeJS.ProcessEnv
  /** Leads a process group of its own, like a server started from a terminal. */
  detached?: boolean
}

/** A server process being watched: what it prints, every pid it is known by, its exit. */
export interface ServerChild {
  /** The cluster primary. */
  pid: number
  /** The primary, every pid its log lines carry (workers, their replacements) and those tracked. */
  pids: ReadonlySet<number>
  /** The primary's exit, once it has exited. */
  exit: () => Exit | undefined
  /** Calls `listener` with every line printed from now on, stdout and stderr, in arrival order. */
  onLine: (listener: (line: LogLine) => void) => void
  /** Adds a pid found some other way (a worker that logs nothing) to those stop() and kill() reach. */
  track: (pid: number) => void
  /** The last lines printed, for error messages. */
  tail: () => string
  /** `waitFor` with the server's last lines in the error. */
  waitUntil: <T>(what: string, check: () => T | undefined | false, timeoutMs: number) => Promise<T>
  /** Resolves when the primary has exited; rejects after `timeoutMs`. */
  waitForExit: (timeoutMs?: number) => Promise<Exit>
  /** SIGTERM to the primary, then SIGKILL to every pid of it still alive once it exited or after `timeoutMs`. */
  stop: (timeoutMs?: number) => Promise<Exit>
  /** SIGKILL to every pid of it still alive, by pid. */
  kill: () => void
}

/** Spawns a server from the repository's root and watches it; see `ServerChild`. */
export function spawnServer({ command, env, detached = false }: SpawnOptions): ServerChild {
  const child = spawn(command[0]!, command.slice(1), { cwd: ROOT, env, detached, stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = child.pid
  if (pid === undefined) throw new Error(`${command.join(' ')} did not start`)
  const pids = new Set([pid])
  const listeners: Array<(line: LogLine) => void> = []
  const recent: string[] = []
  let exit: Exit | undefined

  const read = (stream: NodeJS.ReadableStream) => {
    let pending = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n')
      pending = lines.pop() ?? ''
      for (const raw of lines) {
        if (!raw.trim()) continue
        let line: LogLine = { raw }
        try {
          line = { ...JSON.parse(raw), raw }
        } catch {}
        if (typeof line.pid === 'number') pids.add(line.pid)
        recent.push(raw)
        if (recent.length > 40) recent.shift()
        for (const listener of listeners) listener(line)
      }
    })
  }
  read(child.stdout)
  read(child.stderr)
  child.on('exit', (code, signal) => (exit = { code, signal }))

  const tail = () => recent.join('\n')
  const waitUntil = <T>(what: string, check: () => T | undefined | false, timeoutMs: number) =>
    waitFor(what, check, { timeoutMs, intervalMs: 10 }).catch((error: Error) => {
      throw new Error(`${error.message}; the server's last lines:\n${tail()}`)
    })
  const waitForExit = (timeoutMs = 15_000) => waitUntil('the server to exit', () => exit, timeoutMs)
  const kill = () => {
    for (const known of pids) if (isAlive(known)) process.kill(known, 'SIGKILL')
  }
  const stop = async (timeoutMs = 15_000) => {
    if (!exit) child.kill('SIGTERM')
    try {
      return await waitForExit(timeoutMs)
    } finally {
      kill()
    }
  }
  return {
    pid,
    pids,
    exit: () => exit,
    onLine: (listener) => listeners.push(listener),
    track: (known) => pids.add(known),
    tail,
    waitUntil,
    waitForExit,
    stop,
    kill,
  }
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
  waitForExit: ServerChild['waitForExit']
  stop: ServerChild['stop']
}

export interface StartOptions {
  /** Defaults to a free port. */
  port?: number
  /** Extra env for the child, beside the config. */
  env?: Record<string, string>
  readyTimeoutMs?: number
}

/**
 * Starts the real server (`node --import tsx src/main.ts`) as a child process with `config`, and
 * waits until the primary says every worker listens. The child is the leader of its own process
 * group, like a server started from a terminal. Its database must already exist or be creatable;
 * every process of it still alive is SIGKILLed when the test ends.
 */
export async function startServer(t: Test, config: Config, options: StartOptions = {}): Promise<ServerProcess> {
  const port = options.port ?? (await freePort())
  const server = spawnServer({
    command: [process.execPath, '--import', 'tsx', 'src/main.ts'],
    env: {
      ...process.env,
      ...configToEnv(config),
      PORT: String(port),
      HOST: '127.0.0.1',
      EMBEDDED_SERVICES: 'never',
      // The helper reads the start-up and worker lines, so it needs at least info.
      LOG_LEVEL: config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? config.LOG_LEVEL : 'info',
      ...options.env,
    },
    detached: true,
  })
  const logs: LogLine[] = []
  server.onLine((line) => logs.push(line))
  t.teardown(async () => {
    server.kill()
    // Orphaned workers notice their primary is gone on their own; wait briefly so none outlives the test.
    await waitFor('every process of the server to be gone', () => ![...server.pids].some(isAlive), { timeoutMs: 5000, intervalMs: 50 }).catch(() => {})
  })

  const waitForLog: ServerProcess['waitForLog'] = (pattern, { after = 0, timeoutMs = 10_000 } = {}) => {
    const matches = typeof pattern === 'function' ? pattern : (line: LogLine) => pattern.test(line.raw)
    let next = after
    return server.waitUntil(
      `a log line matching ${pattern}`,
      () => {
        for (; next < logs.length; next++) if (matches(logs[next]!)) return logs[next]
        if (server.exit()) throw new Error(`the server exited (${JSON.stringify(server.exit())}) before logging ${pattern}`)
        return undefined
      },
      timeoutMs,
    )
  }

  const serving = await waitForLog(/"msg":"seatrush is serving"/, { timeoutMs: options.readyTimeoutMs ?? 30_000 })
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    pid: server.pid,
    workerPids: serving.pids as number[],
    logs,
    waitForLog,
    waitForExit: server.waitForExit,
    stop: server.stop,
  }
}
