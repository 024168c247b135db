import { readFileSync } from 'node:fs'
import type { Cluster, Redis, Result } from 'ioredis'
import type { Standing } from './schemas.js'

type Pair = [number, number]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    queueEnqueue(waiting: string, active: string, arrivals: string, userId: number): Result<Pair, Context>
    queueStatus(waiting: string, active: string, userId: number): Result<Pair, Context>
    queueVerifyAndTouch(waiting: string, active: string, userId: number, activeTtlMs: number): Result<Pair, Context>
    queueAdmitTick(
      waiting: string,
      active: string,
      lastSlot: string,
      admissions: string,
      maxActive: number,
      batch: number,
      intervalMs: number,
      activeTtlMs: number,
    ): Result<Pair, Context>
    queueLeave(waiting: string, active: string, userId: number): Result<number, Context>
  }
}

const lua = (name: string) => readFileSync(new URL(`./${name}.lua`, import.meta.url), 'utf8')

/** Loads the queue's scripts once per client; ioredis sends EVALSHA and falls back to EVAL. */
export function defineQueueCommands(redis: Redis | Cluster): void {
  redis.defineCommand('queueEnqueue', { numberOfKeys: 3, lua: lua('enqueue') })
  redis.defineCommand('queueStatus', { numberOfKeys: 2, lua: lua('status') })
  redis.defineCommand('queueVerifyAndTouch', { numberOfKeys: 2, lua: lua('verify-and-touch') })
  redis.defineCommand('queueAdmitTick', { numberOfKeys: 4, lua: lua('admit-tick') })
  redis.defineCommand('queueLeave', { numberOfKeys: 2, lua: lua('leave') })
}

/** Where a user stands: admitted, in line (with a 1-based position), or in neither. */
export type QueueStatus = Omit<Standing, 'userId'> | { status: 'NONE' }

export interface QueueSettings {
  maxActive: number
  admitBatch: number
  admitIntervalMs: number
  activeTtlMs: number
}

export function createQueue(redis: Redis | Cluster, key: (name: string) => string, settings: QueueSettings) {
  const waiting = key('waiting')
  const active = key('active')
  const arrivals = key('arrivals')
  const lastSlot = key('admit-slot')
  const admissions = key('admissions')

  // A user at rank r is let in after ceil((r + 1) / batch) ticks, if slots free up that fast.
  const toStatus = ([state, rank]: Pair): QueueStatus => {
    if (state === 1) return { status: 'ACTIVE', position: 0, etaSeconds: 0 }
    if (state === 0) {
      const position = rank + 1
      const ticks = Math.ceil(position / settings.admitBatch)
      return { status: 'WAITING', position, etaSeconds: Math.ceil((ticks * settings.admitIntervalMs) / 1000) }
    }
    return { status: 'NONE' }
  }

  return {
    async enqueue(userId: number): Promise<QueueStatus> {
      return toStatus(await redis.queueEnqueue(waiting, active, arrivals, userId))
    },
    async status(userId: number): Promise<QueueStatus> {
      return toStatus(await redis.queueStatus(waiting, active, userId))
    },
    async verifyAndTouch(userId: number): Promise<QueueStatus> {
      return toStatus(await redis.queueVerifyAndTouch(waiting, active, userId, settings.activeTtlMs))
    },
    /** Runs this slot's tick unless another worker or host already did; says whether it ran. */
    async admitTick(): Promise<{ won: boolean; admitted: number }> {
      const [won, admitted] = await redis.queueAdmitTick(
        waiting,
        active,
        lastSlot,
        admissions,
        settings.maxActive,
        settings.admitBatch,
        settings.admitIntervalMs,
        settings.activeTtlMs,
      )
      return { won: won === 1, admitted }
    },
    async leave(userId: number): Promise<boolean> {
      return (await redis.queueLeave(waiting, active, userId)) > 0
    },
    async sizes(): Promise<{ waiting: number; active: number; admissions: number }> {
      const [w, a, total] = await Promise.all([redis.zcard(waiting), redis.zcard(active), redis.get(admissions)])
      return { waiting: w, active: a, admissions: Number(total ?? 0) }
    },
  }
}

export type Queue = ReturnType<typeof createQueue>
