import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'

/** Processes watched as one component ("app workers", "mariadbd", ...), by pid. */
export type Components = Record<string, number[]>

let clockTicks: number | undefined

function ticksPerSecond(): number {
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100
  return clockTicks
}

/** The fields of /proc/<pid>/stat after the command name, which may itself hold spaces. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** CPU time (utime + stime, all threads) a process has used, in seconds; undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  const fields = statFields(pid)
  // fields[0] is stat field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  return fields && (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
}

/** Resident memory (VmRSS) in MB; undefined once the process is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) / 1024 : undefined
  } catch {
    return undefined
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
}

export function childPids(parent: number): number[] {
  return allPids().filter((pid) => statFields(pid)?.[1] === String(parent))
}

/** Pids whose command name (/proc/<pid>/comm) matches. */
export function pidsByName(pattern: RegExp): number[] {
  return allPids().filter((pid) => pattern.test(commandName(pid) ?? ''))
}

function commandName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** Socket inodes listening on a TCP port, from /proc/net/tcp and tcp6 (state 0A is LISTEN). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      const localPort = parseInt(fields[1]?.split(':')[1] ?? '', 16)
      if (localPort === port && fields[3] === '0A' && fields[9]) inodes.add(fields[9])
    }
  }
  return inodes
}

/** Pids holding a listening socket on `port`; empty when /proc/<pid>/fd cannot be read (not root). */
function pidsListeningOn(port: number): number[] {
  const sockets = new Set([...listeningInodes(port)].map((inode) => `socket:[${inode}]`))
  if (!sockets.size) return []
  return allPids().filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return sockets.has(readlinkSync(`/proc/${pid}/fd/${fd}`))
        } catch {
          return false
        }
      })
    } catch {
      return false
    }
  })
}

export interface FoundProcess {
  pid: number
  name: string
  /** How it was found: "listens on :3306" or "by name (the port's owner was not visible)". */
  how: string
}

/**
 * The process behind a service: the one listening on its port when that is a `names` process
 * (not, say, docker-proxy), otherwise every local process of that name; empty when none runs here.
 */
export function findService(port: number, names: RegExp): FoundProcess[] {
  const owners = pidsListeningOn(port)
    .map((pid) => ({ pid, name: commandName(pid) ?? '?' }))
    .filter(({ name }) => names.test(name))
  if (owners.length) return owners.map((owner) => ({ ...owner, how: `listens on :${port}` }))
  return pidsByName(names).map((pid) => ({ pid, name: commandName(pid) ?? '?', how: `by name; nothing of that name listens on :${port}` }))
}

export const DATABASE_NAMES = /^(mariadbd|mysqld)$/
export const REDIS_NAMES = /^redis-server$/

/**
 * Starts measuring CPU; the returned function gives each component's CPU% since then
 * (100 = one core busy), from utime+stime deltas over wall time.
 */
export function startCpuMeter(components: Components): () => Record<string, number> {
  const started = performance.now()
  const before = new Map<number, number>()
  for (const pid of Object.values(components).flat()) before.set(pid, cpuSeconds(pid) ?? 0)
  return () => {
    const wallSeconds = (performance.now() - started) / 1000
    return Object.fromEntries(
      Object.entries(components).map(([name, pids]) => {
        const used = pids.reduce((sum, pid) => sum + Math.max(0, (cpuSeconds(pid) ?? before.get(pid)!) - before.get(pid)!), 0)
        return [name, (used / wallSeconds) * 100]
      }),
    )
  }
}

/** Busy and total jiffies of each CPU, from /proc/stat ("cpu3 user nice system idle iowait ..."). */
function cpuTimes(): Map<number, { busy: number; total: number }> {
  const times = new Map<number, { busy: number; total: number }>()
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const match = /^cpu(\d+) (.+)$/.exec(line)
    if (!match) continue
    const fields = match[2]!.trim().split(/\s+/).map(Number)
    const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0)
    times.set(Number(match[1]), { busy: total - fields[3]! - fields[4]!, total })
  }
  return times
}

/**
 * Starts measuring how busy the given CPUs are, whoever keeps them busy; the returned function
 * gives the CPU% since then (100 = one core busy), to compare with what the measured processes used.
 */
export function startCpuBusyMeter(cpus: number[]): () => number {
  const before = cpuTimes()
  return () => {
    const after = cpuTimes()
    return cpus.reduce((sum, cpu) => {
      const [start, end] = [before.get(cpu), after.get(cpu)]
      return start && end && end.total > start.total ? sum + ((end.busy - start.busy) / (end.total - start.total)) * 100 : sum
    }, 0)
  }
}

export interface CpuShare {
  /** CPU% the measured processes used (100 = one core busy). */
  used: number
  /** CPU% the CPUs they may run on were busy, whoever kept them busy. */
  busy: number
  /** CPU% of the load generator (this process): near 100, it is the limit, not the server. */
  loadGenerator: number
}

/**
 * Starts measuring what the processes `pids()` used of the CPUs they may run on, how busy those
 * CPUs were altogether (a gap between the two is other work on the machine) and what the load
 * generator used.
 */
export function startCpuShare(pids: () => number[], cpus: number[]): () => CpuShare {
  const used = startCpuMeter({ measured: pids(), loadGenerator: [process.pid] })
  const busy = startCpuBusyMeter(cpus)
  return () => {
    const { measured, loadGenerator } = used()
    return { used: measured ?? 0, busy: busy(), loadGenerator: loadGenerator ?? 0 }
  }
}

/** Where a server process started with the heap probe writes its heap use. */
export function probeFile(dir: string, pid: number): string {
  return join(dir, `${pid}.json`)
}

export interface MemoryPeak {
  /** Largest RSS any one process reached. */
  rssMb: number
  /** Largest V8 heap in use any one process reported (0 without the heap probe). */
  heapUsedMb: number
}

/**
 * Samples RSS (and, with a probe folder, heap) of the processes `pids()` names every `intervalMs`;
 * the returned function gives the peaks. `pids` is asked each time, so replaced workers count too.
 */
export function startMemoryWatch(pids: () => number[], probeDir: string | undefined, intervalMs = 500): () => MemoryPeak {
  const peak: MemoryPeak = { rssMb: 0, heapUsedMb: 0 }
  const sample = () => {
    for (const pid of pids()) {
      peak.rssMb = Math.max(peak.rssMb, rssMb(pid) ?? 0)
      if (!probeDir) continue
      try {
        const { heapUsedMb } = JSON.parse(readFileSync(probeFile(probeDir, pid), 'utf8')) as { heapUsedMb: number }
        peak.heapUsedMb = Math.max(peak.heapUsedMb, heapUsedMb)
      } catch {
        // Not written yet, or being replaced.
      }
    }
  }
  sample()
  const timer = setInterval(sample, intervalMs)
  return () => {
    clearInterval(timer)
    sample()
    return { ...peak }
  }
}

/** The kernel's cap on any listen backlog (net.core.somaxconn); Infinity when unreadable. */
export function somaxconn(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim()) || Infinity
  } catch {
    return Infinity
  }
}

/**
 * The kernel's count of connections dropped because a listen queue was full (TcpExt
 * ListenDrops in /proc/net/netstat, every socket of this network namespace); 0 when unreadable.
 * A dropped SYN is retried by the client after 1 s, then 3 s: the latency a burst of new
 * connections sees beyond the server's backlog.
 */
export function listenDrops(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((line) => line.startsWith('TcpExt:'))
    const [names, values] = lines.map((line) => line.split(/\s+/))
    const at = names?.indexOf('ListenDrops') ?? -1
    return at > 0 ? Number(values?.[at] ?? 0) : 0
  } catch {
    return 0
  }
}
