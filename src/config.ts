import { availableParallelism } from 'node:os'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

const Int = (defaultValue: number, minimum: number, maximum: number, description: string) =>
  Type.Integer({ default: defaultValue, minimum, maximum, description })

const Bool = (defaultValue: boolean, description: string) => Type.Boolean({ default: defaultValue, description })

/**
 * Every setting the service reads, with its default and meaning. `.env.example` mirrors this
 * schema; the names are a contract with the lab scripts and with operators.
 */
export const ConfigSchema = Type.Object({
  PORT: Int(8080, 0, 65535, 'HTTP port the cluster listens on'),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1, description: 'Interface to bind' }),
  WORKERS: Int(availableParallelism(), 1, 256, 'Worker processes forked by the cluster primary'),
  LISTEN_BACKLOG: Int(4096, 1, 65535, "Connections the kernel queues for the workers to accept (capped by the kernel's net.core.somaxconn); beyond it a client's SYN is dropped and retried after 1 s"),
  CLUSTER_SCHEDULING: Type.Union([Type.Literal('os'), Type.Literal('round-robin')], {
    default: 'os',
    description: "os: each worker accepts its own connections (no hand-off, fast in a burst of new connections); round-robin: the primary accepts and hands them out in turn (Node's default)",
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info', description: 'pino log level' },
  ),

  MYSQL_URL: Type.String({
    default: 'mysql://root@127.0.0.1:3306/seatrush',
    pattern: '^mysql://',
    description: 'MySQL/MariaDB connection URL; the database is created if missing',
  }),
  MYSQL_POOL_SIZE: Int(10, 1, 500, 'Connections per worker'),
  MYSQL_REPLICA_URL: Type.Optional(
    Type.String({
      pattern: '^mysql://',
      description: 'A read replica of MYSQL_URL for concert pages that may be a little stale; unset: every read goes to MYSQL_URL',
    }),
  ),
  REPLICA_MAX_LAG_MS: Int(1000, 100, 3_600_000, 'Reads skip the replica while it is this far behind the primary, or down'),
  REDIS_URL: Type.String({ default: 'redis://127.0.0.1:6379', pattern: '^rediss?://', description: 'Redis URL' }),
  REDIS_CLUSTER_NODES: Type.Optional(
    Type.String({
      pattern: '^[^,:\\s]+:[0-9]{1,5}(,[^,:\\s]+:[0-9]{1,5})*$',
      description: 'Redis Cluster seed nodes as host:port,host:port; when set, used instead of REDIS_URL',
    }),
  ),
  REDIS_KEY_PREFIX: Type.String({
    default: 'seatrush',
    pattern: '^[A-Za-z0-9_.:-]{1,64}$',
    description: 'Namespace inside the hash tag of every Redis key, so deployments can share a Redis',
  }),
  EMBEDDED_SERVICES: Type.Union([Type.Literal('auto'), Type.Literal('never')], {
    default: 'auto',
    description: 'auto: start private mariadbd/redis-server under .data/ when the URLs do not answer',
  }),

  AUTH_MODE: Type.Union([Type.Literal('token'), Type.Literal('user-id')], {
    default: 'token',
    description: 'token: identity tokens for user calls, signed queue tokens for booking; user-id: trust a bare user id (insecure, for the original k6 scripts)',
  }),
  TOKEN_SECRET: Type.Optional(
    Type.String({ minLength: 32, description: 'HMAC secret for queue tokens; generated per start when unset' }),
  ),
  TOKEN_TTL_S: Int(3600, 1, 86400 * 7, 'Lifetime of a queue token'),
  IDENTITY_JWT_SECRET: Type.Optional(
    Type.String({
      minLength: 32,
      description: "HS256 secret of the platform login's identity tokens; token mode without any IDENTITY_* key generates one into .data/ (development)",
    }),
  ),
  IDENTITY_PUBLIC_KEY: Type.Optional(
    Type.String({ minLength: 1, description: 'PEM public key (RS256/ES256) of the identity tokens, instead of the secret' }),
  ),
  IDENTITY_JWKS_URL: Type.Optional(
    Type.String({ pattern: '^https?://', description: 'JWKS URL of the login (RS256/ES256, by kid), instead of the secret' }),
  ),
  TRUST_PROXY: Type.String({
    default: 'false',
    pattern: '^(true|false|[0-9]{1,2}|[0-9A-Fa-f.:/, ]+)$',
    description: 'Fastify trustProxy: false, true, a hop count, or proxy addresses/CIDRs; the client address rate limits key on',
  }),

  MAX_ACTIVE: Int(100, 1, 1_000_000, 'Users of one concert allowed into the booking pages at once (default of each queue)'),
  ADMIT_BATCH: Int(10, 1, 100_000, 'Users admitted per tick (default of each concert\'s queue)'),
  ADMIT_INTERVAL_MS: Int(1000, 10, 600_000, 'Tick length of the admitter (default of each concert\'s queue)'),
  ACTIVE_TTL_MS: Int(300_000, 1000, 86_400_000, 'An active user idle this long loses the slot (sliding)'),
  ACTIVE_READ_MEMO_MS: Int(
    1000,
    0,
    1000,
    'Seat maps and bookable days let a user through without asking Redis for this long after the queue answered the user active, so a user who left or whose slot ended may read them this long after (at most half of ACTIVE_TTL_MS; 0: every read asks). Holds and payments always ask',
  ),
  ACTIVE_MAX_MS: Int(900_000, 100, 86_400_000, 'An admitted user loses the slot this long after admission, however active'),
  WAITING_TTL_MS: Int(120_000, 100, 86_400_000, 'A waiter who neither polls GET /concert/wait nor joins again for this long loses the place'),
  ADMIN_TOKEN: Type.Optional(
    Type.String({ minLength: 16, description: 'Bearer token of the /admin routes; unset, they answer 404' }),
  ),
  HOLD_TTL_MS: Int(300_000, 100, 86_400_000, 'How long a held seat stays reserved before it frees'),
  MAX_HOLDS_PER_USER: Int(4, 1, 10_000, 'Live holds a user may have per concert'),
  HOLD_COOLDOWN_MS: Int(30_000, 0, 86_400_000, 'How long after a hold lapsed its user must wait to hold that seat again'),
  CONCERT_CACHE_MS: Int(1000, 0, 60_000, 'How stale concert reads may be (0 disables the cache)'),
  SEAT_MAP_CHECK_MS: Int(5, 0, 1000, 'A cached seat map or day list is served this long without asking Redis for its version (0: every request asks)'),

  MAX_CHARGE: Int(1_000_000, 1, 1_000_000_000, 'Largest single point charge'),
  MAX_BALANCE: Int(1_000_000_000, 1, 1_000_000_000_000, 'Largest balance a user may hold'),

  SERIALIZER: Type.Union([Type.Literal('inline'), Type.Literal('worker'), Type.Literal('auto')], {
    default: 'auto',
    description: 'Where large seat maps are built and serialized: event loop, piscina pool, or by size',
  }),
  // bench/relief.ts measures where the pool pays: the cheap call beside seat maps built on every
  // request gets a lower p99 while the maps lose under 10% of their 2xx/s. Since maps are packed by
  // MySQL and written as bytes (a third of the event loop's CPU they cost before), it paid at no
  // size measured: bench/results/2026-12-03T19-22-21Z-relief, 1 worker, at 20,000 seats 1.1x the
  // cheap call's p99 and 0.74x the maps; at 100,000, 0.8x the p99 but 0.78x the maps. (Before,
  // in 2026-12-03T09-22-44Z-relief, it cut that p99 to 0.2x at 20,000.) So auto pools only halls
  // larger than any measured; SERIALIZER=worker still pools every map.
  SERIALIZER_THRESHOLD_SEATS: Int(1_000_000, 0, 10_000_000, 'auto: seat maps at least this large go to the pool'),
  SERIALIZER_THREADS: Int(2, 1, 64, 'piscina threads per worker process'),

  SHED_LOAD: Bool(true, 'Answer 503 + Retry-After under pressure instead of queueing work'),
  // CoDel ("Fail at Scale", ACM Queue 2015) on the event loop and on the wait for a MySQL
  // connection. Target plus interval is the 1 s a client waits: the bursts a rush brings (150
  // charges of one user drained in 0.3-0.4 s, and up to 1.3 s on a 2-core machine busy with other
  // work) are served, a queue that would outlast the client is shed.
  SHED_TARGET_MS: Int(500, 1, 60_000, 'Longest a request should wait for the event loop or a MySQL connection; waits above it for SHED_INTERVAL_MS shed'),
  SHED_INTERVAL_MS: Int(500, 1, 60_000, 'How long waits must stay above SHED_TARGET_MS before a worker sheds (CoDel interval)'),
  // Clients that ignore Retry-After come straight back: in the lab's ramp (large hall, 1,024
  // connections) a worker answered about 12,000 refusals a second for 200 maps, and the refusals'
  // CPU, its own and the clients', was what the maps lacked. A refusal costs the worker about 60 us,
  // but on a shared machine the clients' side of it and the kernel's take the cores MySQL needs:
  // in two full runs of bench:ramp one after the other (bench/results/2026-12-04T13-47-00Z-ramp
  // and 2026-12-04T14-00-11Z-ramp), the large hall at 512 and 1,024 connections got 1,210 and
  // 1,704 refusals a second and 365 and 359 maps at a pace of 1,000 a second, 394 and 824
  // refusals and 535 and 439 maps at 100 (both runs with a door rule since dropped, docs/lab.md).
  // A client that honours Retry-After waits a second
  // anyway, so a held refusal costs it nothing.
  SHED_REFUSALS_PER_S: Int(100, 0, 1_000_000, 'Shed 503s a worker answers at once per second; beyond them a refused request waits its turn to be told (0 = no limit)'),
  // Off by default: a worker at full speed is near 1.0 even while its latency is fine, and a 503
  // costs about as much as a cheap read, so shedding on utilization only lowers goodput.
  MAX_EVENT_LOOP_UTILIZATION: Type.Number({ default: 0, minimum: 0, maximum: 1, description: 'Shed above this event-loop utilization over the last 500 ms (0 = off)' }),
  MAX_HEAP_USED_MB: Int(512, 0, 65_536, 'Shed above this heap use per worker (0 = off)'),
  RETRY_AFTER_S: Int(1, 1, 3600, 'Retry-After sent with a shed 503'),
  RATE_LIMIT_WAIT_PER_MIN: Int(120, 0, 1_000_000, 'POST /concert/wait calls per caller per minute, across all workers and hosts (0 = off)'),
  RATE_LIMIT_HOLD_PER_MIN: Int(60, 0, 1_000_000, 'Seat holds per caller per minute, across all workers and hosts (0 = off)'),
  RATE_LIMIT_PAY_PER_MIN: Int(30, 0, 1_000_000, 'Payment calls per caller per minute, across all workers and hosts (0 = off)'),
  IDEMPOTENCY_TTL_H: Int(24, 1, 24 * 365, 'Hours an Idempotency-Key is remembered before it is swept'),
  BODY_LIMIT: Int(16_384, 256, 10_485_760, 'Largest request body in bytes'),
  SHUTDOWN_TIMEOUT_MS: Int(10_000, 100, 600_000, 'Time in-flight requests get to finish on SIGTERM'),

  SEED_USERS: Int(1000, 0, 10_000_000, 'Users seeded with ids 1..N'),
  SEED_POINTS: Int(100_000, 0, 1_000_000_000, 'Starting balance of each seeded user'),
  SEED_DETAILS: Int(4, 1, 365, 'Dated options of the seeded concert 1'),
  SEATS_PER_DETAIL: Int(50, 1, 100_000, 'Seats in each option of concert 1'),
  SEAT_PRICE: Int(50_000, 1, 100_000_000, 'Price of a seat in the seeded concert'),
})

export type Config = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  constructor(readonly variable: string, detail: string) {
    super(`Invalid configuration: ${variable} ${detail}`)
    this.name = 'ConfigError'
  }
}

/**
 * Reads the config from an env-like object: unknown keys are ignored, strings are converted to
 * the schema's types, and the first problem stops start-up naming its variable.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  for (const [key, schema] of Object.entries(ConfigSchema.properties) as [string, TSchema][]) {
    if (raw[key] === undefined) continue
    raw[key] = Value.Convert(schema, raw[key])
  }
  const withDefaults = Value.Default(ConfigSchema, raw)
  const error = Value.Errors(ConfigSchema, withDefaults).First()
  if (error) {
    const variable = error.path.split('/')[1] ?? '(config)'
    throw new ConfigError(variable, `= ${JSON.stringify(raw[variable])}: ${error.message}`)
  }
  return withDefaults as Config
}

/** The config as env variables, for handing to child processes. */
export function configToEnv(config: Config): Record<string, string> {
  return Object.fromEntries(
    Object.entries(config)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => [key, String(value)]),
  )
}
