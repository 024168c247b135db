import { spawnSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { configToEnv, loadConfig, type Config } from '../../src/config.js'
import { freePort } from '../../src/runtime/services.js'
import { spawnServer, type LogLine, type ServerChild } from '../../test/helpers/server-process.js'
import { TEST_IDENTITY_SECRET } from '../../test/helpers/jwt.js'
import { ownStore } from '../../test/helpers/store.js'
import { compiledServers, type Build } from './build.js'
import { childPids, pidsByName } from './proc.js'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

/** The servers the lab can start: the real cluster and the two references it is compared with. */
const entries = {
  app: 'src/main',
  hello: 'bench/reference/hello',
  thin: 'bench/reference/thin',
} as const
const heapProbe = 'bench/lib/heap-probe'

let build: Build | undefined

/**
 * How the servers run: compiled JavaScript by default (as `npm start` runs), or from TypeScript
 * through tsx when BENCH_RUNTIME=tsx (no build step; every process carries the loader).
 */
export function serverRuntime(): { note: string; command: (entry: string, probe: boolean) => string[] } {
  if (process.env.BENCH_RUNTIME === 'tsx') {
    return {
      note: 'TypeScript through tsx (BENCH_RUNTIME=tsx): every process also carries the loader',
      command: (entry, probe) => ['--import', 'tsx', ...(probe ? ['--import', join(repoRoot, `${heapProbe}.ts`)] : []), join(repoRoot, `${entry}.ts`)],
    }
  }
  build ??= compiledServers()
  const dir = build.dir
  return {
    note: build.note,
    command: (entry, probe) => [...(probe ? ['--import', join(dir, `${heapProbe}.js`)] : []), join(dir, `${entry}.js`)],
  }
}

export type ServerKind = keyof typeof entries

export type Settings = Record<string, string | number | boolean>

/**
 * The config of a lab command's servers: a store of the command's own (seatrush_bench_<name>,
 * bench-<name>, so two lab commands running at once never reset each other's data), a fixed
 * token secret (tokens survive a restart between runs), quiet logs, every user admitted at once
 * and for the whole run, balances that never run out, and no per-user rate limits (the lab
 * reuses a thousand users far faster than people would); `settings` on top. MYSQL_URL and
 * REDIS_URL in the environment choose the servers.
 */
export function labConfig(name: string, users: number, settings: Settings): Config {
  return loadConfig({
    ...ownStore('bench', name),
    REDIS_URL: process.env.REDIS_URL,
    TOKEN_SECRET: 'seatrush-bench-secret-not-for-production',
    // The lab plays the platform's login as the tests do: it mints its users' identity tokens.
    IDENTITY_JWT_SECRET: TEST_IDENTITY_SECRET,
    EMBEDDED_SERVICES: 'never',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    ...Object.fromEntries(
      Object.entries({
        SEED_USERS: users,
        SEED_POINTS: 100_000_000,
        MAX_ACTIVE: users,
        ADMIT_BATCH: users,
        ADMIT_INTERVAL_MS: 100,
        ACTIVE_TTL_MS: 3_600_000,
        RATE_LIMIT_WAIT_PER_MIN: 0,
        RATE_LIMIT_PAY_PER_MIN: 0,
        RATE_LIMIT_HOLD_PER_MIN: 0,
        ...settings,
      }).map(([key, value]) => [key, String(value)]),
    ),
  })
}

const SECRETS = ['TOKEN_SECRET', 'IDENTITY_JWT_SECRET']

/** The settings of `config` that differ from the defaults (the secrets left out), for the report. */
export function changedSettings(config: Config): Settings {
  const defaults: Record<string, unknown> = loadConfig({})
  return Object.fromEntries(
    Object.entries(config).filter(([key, value]) => !SECRETS.includes(key) && (key === 'WORKERS' || value !== defaults[key])),
  ) as Settings
}

export interface Pinning {
  applied: boolean
  /** One line for the console and the report. */
  note: string
  /** taskset CPU list for the servers; undefined when not pinned. */
  serverCpus?: string
  /** How many CPUs the servers may use: the default worker count. */
  serverCpuCount: number
  /** The CPUs the servers may use (all this process may use when not pinned); unknown: all. */
  serverCpuList?: number[]
}

function affinity(pid: number): number[] {
  const out = spawnSync('taskset', ['-cp', String(pid)], { encoding: 'utf8' }).stdout ?? ''
  const list = out.split(':').pop()?.trim() ?? ''
  return list.split(',').flatMap((part) => {
    const [first, last] = part.split('-').map(Number)
    if (first === undefined || Number.isNaN(first)) return []
    return Array.from({ length: (last ?? first) - first + 1 }, (_, i) => first + i)
  })
}

/**
 * Keeps the load generator (this process) and the servers off each other's CPUs: this process
 * takes the last CPU it may use, the servers get the rest. MySQL and Redis are left alone.
 * `refused` says why not to pin at all.
 */
export function pinLoadGenerator(refused?: string): Pinning {
  if (spawnSync('taskset', ['-V']).error) {
    const all = Array.from({ length: availableParallelism() }, (_, i) => i)
    return { applied: false, note: 'not applied: taskset not found', serverCpuCount: all.length, serverCpuList: all }
  }
  const cpus = affinity(process.pid)
  if (refused) return { applied: false, note: `not applied: ${refused}`, serverCpuCount: cpus.length, serverCpuList: cpus }
  if (cpus.length < 2) return { applied: false, note: `not applied: only ${cpus.length} CPU`, serverCpuCount: cpus.length, serverCpuList: cpus }
  const loadCpu = String(cpus.at(-1))
  const serverCpus = cpus.slice(0, -1).join(',')
  const result = spawnSync('taskset', ['-a', '-cp', loadCpu, String(process.pid)], { encoding: 'utf8' })
  if (result.status !== 0) {
    return { applied: false, note: `not applied: taskset failed: ${result.stderr.trim()}`, serverCpuCount: cpus.length, serverCpuList: cpus }
  }
  return {
    applied: true,
    note: `applied: load generator on CPU ${loadCpu}, servers on CPU ${serverCpus}; MySQL and Redis unpinned`,
    serverCpus,
    serverCpuCount: cpus.length - 1,
    serverCpuList: cpus.slice(0, -1),
  }
}

/** The CPUs the measured servers may run on. */
export const serverCpuList = (pinning: Pinning): number[] => pinning.serverCpuList ?? Array.from({ length: availableParallelism() }, (_, i) => i)

export interface RunningServer {
  kind: ServerKind
  url: string
  /** The workers now: a dead worker's replacement shows up here after `findWorkers`. */
  workerPids: number[]
  /** The primary and the workers: with WORKERS=1 the primary serves requests itself. */
  allPids: () => number[]
  /** Workers the primary reported dead so far ("worker died; replacing it"). */
  deaths: () => number
  findWorkers: () => number[]
  stop: () => Promise<void>
}

export interface StartOptions {
  pinning: Pinning
  /** Folder for the heap probe's files; heap use is only measured when set. */
  probeDir?: string
  readyTimeoutMs?: number
}

const running = new Map<RunningServer, ServerChild>()

let cleanupInstalled = false
function installCleanup() {
  if (cleanupInstalled) return
  cleanupInstalled = true
  // Whatever ends the lab, no server it started outlives it.
  process.on('exit', () => running.forEach((child) => child.kill()))
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping the servers this run started\n`)
      void stopAll().finally(() => process.exit(130))
    })
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running.keys()].map((server) => server.stop()))
}

// The app announces itself with a banner ("seatrush: 2 workers on http://...") or, at info level,
// a JSON line; the references print a JSON line "<name> is serving".
const isReadyLine = (line: LogLine) => /^seatrush: \d+ workers? on /.test(line.raw) || /is serving$/.test(line.msg ?? '')

// The app's primary logs this (pino, stdout) and the references' primary prints "worker ... died".
const isDeathLine = (line: LogLine) => /worker died; replacing it|: worker \d+ died/.test(line.raw)

/**
 * Node children of the primary (tsx may add an esbuild helper beside them). The app names its
 * processes (process.title "seatrush-worker", which /proc shows cut to 15 characters).
 */
function workersOf(primaryPid: number): number[] {
  const nodes = new Set(pidsByName(/^(node|seatrush-)/))
  return childPids(primaryPid).filter((pid) => nodes.has(pid))
}

/**
 * Starts a server as its own cluster (pinned to the server CPUs when pinning applies) on a free
 * port with the given config, and resolves once every worker listens.
 */
export async function startServer(kind: ServerKind, config: Config, options: StartOptions): Promise<RunningServer> {
  installCleanup()
  const port = await freePort()
  // BENCH_CPU_PROF=<dir>: every server process (workers inherit it) writes a V8 CPU profile there on exit.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const nodeArgs = [...profile, ...serverRuntime().command(entries[kind], options.probeDir !== undefined)]
  const child = spawnServer({
    command: [...(options.pinning.serverCpus ? ['taskset', '-c', options.pinning.serverCpus] : []), process.execPath, ...nodeArgs],
    env: { ...process.env, ...configToEnv(config), PORT: String(port), ...(options.probeDir ? { BENCH_PROBE_DIR: options.probeDir } : {}) },
  })
  let deaths = 0
  let ready = false
  child.onLine((line) => {
    if (isDeathLine(line)) deaths++
    if (isReadyLine(line)) ready = true
  })
  const server: RunningServer = {
    kind,
    url: `http://127.0.0.1:${port}`,
    workerPids: [],
    allPids: () => [child.pid, ...server.workerPids],
    deaths: () => deaths,
    findWorkers: () => {
      server.workerPids = workersOf(child.pid)
      server.workerPids.forEach(child.track)
      return server.workerPids
    },
    stop: async () => {
      if (!running.delete(server)) return
      // A primary that cannot drain its workers in time is stopped, and they too, by pid.
      await child.stop(15_000).catch(() => {})
    },
  }
  running.set(server, child)

  try {
    await child.waitUntil(
      `the ${kind} server to be ready`,
      () => {
        if (deaths >= 3) throw new Error(`${kind} server: workers keep dying at start-up`)
        const exit = child.exit()
        if (!ready && exit) throw new Error(`${kind} server exited (${exit.signal ?? exit.code}) before it was ready`)
        return ready
      },
      options.readyTimeoutMs ?? 60_000,
    )
  } catch (error) {
    await server.stop()
    throw error
  }
  server.findWorkers()
  return server
}
