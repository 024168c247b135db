import { parseArgs } from 'node:util'
import type { Settings } from './server.js'

/** The flags every lab command understands; each command picks the ones it uses and its own defaults. */
export interface Flags {
  quick: boolean
  pin: boolean
  /** Server settings from `--set NAME=value`, applied last. */
  set: Settings
  durationS?: number
  connections?: number[]
  workers?: number
  users?: number
  seats?: number
  hallSeats?: number
  endpoints: string[]
  sloMs?: number
  /** Hall sizes (seats) to measure (serializer). */
  sizes?: number[]
  /** Repetitions of every measurement (serializer). */
  rounds?: number
  /** Results root; the run's folder is created inside it. */
  out?: string
  /** rush only: the join burst alone, without the rush after it. */
  burstOnly: boolean
  /** ramp only: the cases to run (by name); all but the opt-in ones when empty. */
  cases: string[]
}

const usage = `Flags (all optional):
  --quick                 short runs for a smoke test (under two minutes), into bench/results/quick/
  --out DIR               results root (default bench/results, or bench/results/quick with --quick)
  --duration SECONDS      length of each measured run (bench, cluster, serializer) or stage (ramp)
  --connections N[,N...]  concurrent connections (bench, cluster, serializer); ramp: the stages
  --workers N             worker processes (bench, ramp, serializer); cluster: the largest size tried (default 2 x cores); relief: the workers lever's count (default: cores)
  --users N               users seeded and admitted (random ids 1..N; default 1000)
  --seats N               seats in each option of concert 1 (the seat maps most calls read)
  --hall N                seats in the large hall (concert 2, one option): the CPU-heavy seat map (relief: the holds' hall)
  --endpoint "GET /path"  bench only: endpoint(s) to load, as its table names them; repeatable
  --slo MS                goodput counts 2xx answered within this many ms (default 1000)
  --sizes N[,N...]        serializer, relief: the hall sizes (seats) measured (relief: beside GET /concert/1)
  --rounds N              serializer only: how often every measurement is repeated (tables show medians)
  --burst-only            rush only: measure the join burst and stop (no rush after it)
  --case NAME             ramp only: run this case alone ("browse and queue", "large hall", or the opt-in
                          "large hall, Retry-After honoured"); repeatable
  --set NAME=value        a server setting (any variable of src/config.ts), applied last; repeatable
  --no-pin                do not pin the load generator and the servers to separate CPUs (serializer never does)
  --tsx                   run the servers from TypeScript through tsx instead of compiled (BENCH_RUNTIME=tsx)`

const positive = (name: string, value: string | undefined, integer = true): number | undefined => {
  if (value === undefined) return undefined
  const number = Number(value)
  if (!Number.isFinite(number) || number <= 0 || (integer && !Number.isInteger(number))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'} (got "${value}")\n\n${usage}`)
  }
  return number
}

export function readFlags(argv = process.argv.slice(2)): Flags {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      tsx: { type: 'boolean', default: false },
      set: { type: 'string', multiple: true, default: [] },
      duration: { type: 'string' },
      connections: { type: 'string' },
      workers: { type: 'string' },
      users: { type: 'string' },
      seats: { type: 'string' },
      hall: { type: 'string' },
      out: { type: 'string' },
      endpoint: { type: 'string', multiple: true, default: [] },
      slo: { type: 'string' },
      sizes: { type: 'string' },
      rounds: { type: 'string' },
      'burst-only': { type: 'boolean', default: false },
      case: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(`${usage}\n`)
    process.exit(0)
  }
  if (values.tsx) process.env.BENCH_RUNTIME = 'tsx'
  const set: Settings = {}
  for (const pair of values.set) {
    const at = pair.indexOf('=')
    if (at < 1) throw new Error(`--set wants NAME=value (got "${pair}")`)
    set[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return {
    quick: values.quick,
    pin: !values['no-pin'],
    set,
    durationS: positive('duration', values.duration, false),
    connections: values.connections?.split(',').map((value) => positive('connections', value)!),
    workers: positive('workers', values.workers),
    users: positive('users', values.users),
    seats: positive('seats', values.seats),
    hallSeats: positive('hall', values.hall),
    endpoints: values.endpoint,
    sloMs: positive('slo', values.slo),
    sizes: values.sizes?.split(',').map((value) => positive('sizes', value)!),
    rounds: positive('rounds', values.rounds),
    out: values.out,
    burstOnly: values['burst-only'],
    cases: values.case,
  }
}
