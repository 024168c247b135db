import type { Config } from '../config.js'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Cluster, Redis, Result } from 'ioredis'
import type { Place } from './schemas.js'

/** {state, rank, batch, interval, opensAt}: see common.lua. */
type Standing = [number, number, number, number, number]
type Tick = [number, number, number, number]
type Stats = [] | [number, number, number, number, number, number, number, number, number, number]

// Every script takes the concert's keys first, then its arguments (numberOfKeys below).
type Args = (string | number)[]
declare module 'ioredis' {
  interface RedisCommander<Context> {
    queueEnqueue(...args: Args): Result<Standing, Context>
    queueHeartbeat(...args: Args): Result<Standing, Context>
    queueVerifyAndTouch(...args: Args): Result<Standing, Context>
    queueAdmitTick(...args: Args): Result<Tick, Context>
    queueOpenSale(...args: Args): Result<number, Context>
    queueLeave(...args: Args): Result<number, Context>
    queueStats(...args: Args): Result<Stats, Context>
  }
}

const lua = (name: string) => readFileSync(new URL(`./${name}.lua`, import.meta.url), 'utf8')

/** Loads the queue's scripts once per client; ioredis sends EVALSHA and falls back to EVAL. */
export function defineQueueCommands(redis: Redis | Cluster): void {
  const common = lua('common')
  const define = (command: string, file: string, numberOfKeys: number) =>
    redis.defineCommand(command, { numberOfKeys, lua: `${common}\n${lua(file)}` })
  define('queueEnqueue', 'enqueue', 7)
  define('queueHeartbeat', 'heartbeat', 6)
  define('queueVerifyAndTouch', 'verify-and-touch', 6)
  define('queueAdmitTick', 'admit-tick', 8)
  define('queueOpenSale', 'open-sale', 3)
  define('queueLeave', 'leave', 5)
  define('queueStats', 'stats', 5)
}

/**
 * The keys of one concert's queue. They share the concert's own hash tag, so every script runs on
 * one Redis Cluster slot and different concerts spread over the shards.
 */
export function concertQueueKeys(prefix: string, concertId: number) {
  const key = (name: string) => `{${prefix}:${concertId}}:${name}`
  return {
    /** Hash: saleOpensAt, openedAt, the operator's overrides, lastTick. Exists iff the concert is known. */
    concert: key('concert'),
    /** Zset user -> arrival number (or drawn place, below 1): the line, FIFO. */
    waiting: key('waiting'),
    /** Zset user -> arrival number: joined before the sale opened; shuffled into the line at the opening. */
    prequeue: key('prequeue'),
    /** Zset user -> last heartbeat (ms) of everyone in the line or the pre-queue. */
    seen: key('seen'),
    /** Zset user -> expiry (ms) of the active slot. */
    active: key('active'),
    /** Zset user -> admission time (ms), for ACTIVE_MAX_MS. */
    admitted: key('admitted'),
    arrivals: key('arrivals'),
    /** Total admissions ever. */
    admissions: key('admissions'),
    /** Zset "<time>:<count>" -> time, for the last minute's admissions. */
    admitLog: key('admit-log'),
  }
}

/** Where a user stands in one concert's queue, or nowhere. */
export type QueueStatus = Place | { status: 'NONE' }

export interface QueueSettings {
  maxActive: number
  admitBatch: number
  admitIntervalMs: number
  activeTtlMs: number
  activeMaxMs: number
  waitingTtlMs: number
}

/** Each queue's defaults, from the config. */
export function queueSettings(config: Config): QueueSettings {
  return {
    maxActive: config.MAX_ACTIVE,
    admitBatch: config.ADMIT_BATCH,
    admitIntervalMs: config.ADMIT_INTERVAL_MS,
    activeTtlMs: config.ACTIVE_TTL_MS,
    activeMaxMs: config.ACTIVE_MAX_MS,
    waitingTtlMs: config.WAITING_TTL_MS,
  }
}

/** The live settings of one queue: the operator's overrides over the defaults. */
export interface QueueView {
  waiting: number
  prequeue: number
  active: number
  admittedPerMinute: number
  settings: { paused: boolean; maxActive: number; admitBatch: number; admitIntervalMs: number; saleOpensAt: string; open: boolean }
}

/** Stale waiters and expired actives dropped per tick at most: bounds each script's run time. */
const DROP_LIMIT = 1000

export function createQueue(redis: Redis | Cluster, prefix: string, defaults: QueueSettings) {
  const keysOf = (concertId: number) => concertQueueKeys(prefix, concertId)
  const standingKeys = (k: ReturnType<typeof keysOf>) => [k.concert, k.waiting, k.prequeue, k.seen, k.active, k.admitted]
  const settingArgs = [defaults.maxActive, defaults.admitBatch, defaults.admitIntervalMs]

  // A user at rank r is let in after ceil((r + 1) / batch) ticks, if slots free up that fast;
  // batch and interval are the ones in force for the queue, answered by the script.
  const toStatus = (concertId: number, [state, rank, batch, interval, opensAt]: Standing): QueueStatus => {
    const eta = (position: number) => Math.ceil((Math.ceil(position / batch) * interval) / 1000)
    if (state === 1) return { status: 'ACTIVE', concertId, position: 0, etaSeconds: 0 }
    if (state === 0) return { status: 'WAITING', concertId, position: rank + 1, etaSeconds: eta(rank + 1) }
    if (state === 2) {
      // The place is drawn at the opening: until then only the time to it is known.
      const untilOpening = Math.max(0, Math.ceil((opensAt - Date.now()) / 1000))
      return { status: 'PREQUEUE', concertId, position: 0, etaSeconds: untilOpening, opensAt: new Date(opensAt).toISOString() }
    }
    return { status: 'NONE' }
  }

  return {
    keys: keysOf,

    /** Joins the concert's queue (idempotent per user); undefined when Redis knows no such concert. */
    async enqueue(userId: number, concertId: number): Promise<Place | undefined> {
      const k = keysOf(concertId)
      const reply = await redis.queueEnqueue(...standingKeys(k), k.arrivals, userId, ...settingArgs, defaults.waitingTtlMs)
      if (reply[0] === -2) return undefined
      return toStatus(concertId, reply) as Place
    },

    /** Where the user stands; a waiter's call is the heartbeat that keeps the place. */
    async heartbeat(userId: number, concertId: number): Promise<QueueStatus> {
      const reply = await redis.queueHeartbeat(...standingKeys(keysOf(concertId)), userId, ...settingArgs, defaults.waitingTtlMs)
      return toStatus(concertId, reply)
    },

    /** Where the user stands; an active user's slot is slid (within ACTIVE_MAX_MS of admission). */
    async verifyAndTouch(userId: number, concertId: number): Promise<QueueStatus> {
      const reply = await redis.queueVerifyAndTouch(
        ...standingKeys(keysOf(concertId)),
        userId,
        ...settingArgs,
        defaults.waitingTtlMs,
        defaults.activeTtlMs,
        defaults.activeMaxMs,
      )
      return toStatus(concertId, reply)
    },

    /**
     * Runs the concert's tick unless another worker or host ran one less than an interval ago;
     * opens the sale first when it is due. Answers whether this call ran it and the interval in force.
     */
    async admitTick(concertId: number): Promise<{ won: boolean; admitted: number; intervalMs: number }> {
      const k = keysOf(concertId)
      const tick = () =>
        redis.queueAdmitTick(
          ...standingKeys(k),
          k.admissions,
          k.admitLog,
          ...settingArgs,
          defaults.activeTtlMs,
          defaults.activeMaxMs,
          defaults.waitingTtlMs,
          DROP_LIMIT,
        )
      let [won, admitted, intervalMs, saleDue] = await tick()
      if (saleDue === 1) {
        await redis.queueOpenSale(k.concert, k.waiting, k.prequeue, randomBytes(16).toString('hex'))
        ;[won, admitted, intervalMs] = await tick()
      }
      return { won: won === 1, admitted, intervalMs }
    },

    async leave(userId: number, concertId: number): Promise<boolean> {
      const k = keysOf(concertId)
      return (await redis.queueLeave(k.waiting, k.prequeue, k.seen, k.active, k.admitted, userId)) > 0
    },

    /** The operator's view of one queue; undefined when Redis knows no such concert. */
    async view(concertId: number): Promise<QueueView | undefined> {
      const k = keysOf(concertId)
      const stats = await redis.queueStats(k.concert, k.waiting, k.prequeue, k.active, k.admitLog, ...settingArgs)
      if (stats.length === 0) return undefined
      const [waiting, prequeue, active, admittedPerMinute, paused, maxActive, admitBatch, admitIntervalMs, opensAt, open] = stats
      return {
        waiting,
        prequeue,
        active,
        admittedPerMinute,
        settings: { paused: paused === 1, maxActive, admitBatch, admitIntervalMs, saleOpensAt: new Date(opensAt).toISOString(), open: open === 1 },
      }
    },
  }
}

export type Queue = ReturnType<typeof createQueue>
