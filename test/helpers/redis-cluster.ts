import { execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { redisKeyPattern, redisMasters, type RedisClient } from '../../src/plugins/redis.js'
import { RedisServer } from './redis-server.js'
import { waitFor } from './wait.js'

const run = promisify(execFile)

/** A master: where a key's slot is served. */
export interface MasterOf {
  slot: number
  port: number
  id: string
}

export interface RedisClusterOptions {
  masters?: number
  /** Replicas per master (default 1). */
  replicas?: number
  /** cluster-node-timeout: how long a master may be silent before its replica takes over. */
  nodeTimeoutMs?: number
}

/**
 * A private Redis Cluster: redis-server processes (RedisServer) on free ports with their data under
 * `.data/redis-cluster-<id>/`, joined with `redis-cli --cluster create`. Stopped by PID and its
 * folder removed by `stop()`.
 */
export class RedisCluster {
  readonly nodes: RedisServer[] = []
  private readonly admins = new Map<number, Redis>()

  private constructor(readonly dir: string) {}

  static async start({ masters = 3, replicas = 1, nodeTimeoutMs = 1000 }: RedisClusterOptions = {}): Promise<RedisCluster> {
    const cluster = new RedisCluster(resolve('.data', `redis-cluster-${randomBytes(4).toString('hex')}`))
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const dir = resolve(cluster.dir, String(i))
        const flags = [
          '--cluster-enabled', 'yes', '--cluster-config-file', resolve(dir, 'nodes.conf'),
          '--cluster-node-timeout', String(nodeTimeoutMs), '--appendonly', 'no',
          // A replica syncs at once rather than after the default 5 s, so it can be promoted soon after start.
          '--repl-diskless-sync-delay', '0',
        ]
        cluster.nodes.push(await RedisServer.start(dir, flags))
      }
      const addresses = cluster.nodes.map((node) => `127.0.0.1:${node.port}`)
      await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'])
      await cluster.waitUntilHealthy()
      return cluster
    } catch (error) {
      await cluster.stop()
      throw error
    }
  }

  /** REDIS_CLUSTER_NODES for this cluster. */
  get seeds(): string {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`).join(',')
  }

  /** A plain connection to one node, for cluster administration (no redirections followed). */
  admin(port: number): Redis {
    let client = this.admins.get(port)
    if (!client) {
      client = new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => 200 })
      client.on('error', () => {})
      this.admins.set(port, client)
    }
    return client
  }

  private alive(): RedisServer[] {
    return this.nodes.filter((node) => node.running)
  }

  /**
   * Until every live node says cluster_state:ok and agrees on who serves every slot, and every
   * replica is in sync with its master (a replica that never synced refuses to be promoted).
   */
  async waitUntilHealthy(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      'cluster_state:ok on every node',
      async () => {
        const views = await Promise.all(
          this.alive().map(async (node) => {
            const info = String(await this.admin(node.port).cluster('INFO').catch(() => ''))
            const replication = await this.admin(node.port).info('replication').catch(() => '')
            const synced = !replication.includes('role:slave') || replication.includes('master_link_status:up')
            return info.includes('cluster_state:ok') && synced ? JSON.stringify(await this.slotMap(node.port)) : undefined
          }),
        )
        return views.every((view) => view !== undefined && view === views[0])
      },
      { timeoutMs, intervalMs: 100 },
    )
  }

  /** Slot ranges and their master, as node `port` (default: any live node) sees them. */
  private async slotMap(port = this.alive()[0]!.port): Promise<{ from: number; to: number; port: number; id: string }[]> {
    const slots = await this.admin(port).cluster('SLOTS')
    return slots.map(([from, to, master]) => ({ from, to, port: master![1], id: master![2] })).sort((a, b) => a.from - b.from)
  }

  /** Which master holds key `key` (CLUSTER KEYSLOT, then CLUSTER SLOTS), asked of any live node. */
  async masterOf(key: string): Promise<MasterOf> {
    const slot = Number(await this.admin(this.alive()[0]!.port).cluster('KEYSLOT', key))
    return { slot, ...(await this.ownerOfSlot(slot)) }
  }

  /** The masters, by port and node id. */
  async masters(): Promise<{ port: number; id: string }[]> {
    const byPort = new Map((await this.slotMap()).map(({ port, id }) => [port, id]))
    return [...byPort].map(([port, id]) => ({ port, id }))
  }

  /**
   * Moves one slot to master `to` as redis-cli --cluster reshard does: IMPORTING/MIGRATING, keys
   * moved with MIGRATE one at a time (clients meanwhile get ASK for moved keys), then the slot
   * assigned to `to` on every master. `pauseMs` between batches widens the ASK window.
   */
  async moveSlot(slot: number, to: { port: number; id: string }, pauseMs = 100): Promise<void> {
    const owner = await this.ownerOfSlot(slot)
    if (owner.port === to.port) throw new Error(`slot ${slot} is already on ${to.port}`)
    const source = this.admin(owner.port)
    const target = this.admin(to.port)
    await target.cluster('SETSLOT', slot, 'IMPORTING', owner.id)
    await source.cluster('SETSLOT', slot, 'MIGRATING', to.id)
    for (;;) {
      const keys = (await source.cluster('GETKEYSINSLOT', slot, 1)) as string[]
      if (keys.length === 0) break
      await source.call('MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'REPLACE', 'KEYS', ...keys)
      await new Promise((done) => setTimeout(done, pauseMs))
    }
    for (const master of await this.masters()) await this.admin(master.port).cluster('SETSLOT', slot, 'NODE', to.id)
  }

  private async ownerOfSlot(slot: number): Promise<{ port: number; id: string }> {
    const range = (await this.slotMap()).find(({ from, to }) => slot >= from && slot <= to)
    if (!range) throw new Error(`no master serves slot ${slot}`)
    return { port: range.port, id: range.id }
  }

  /** kill -9 of the master on `port`; resolves once its replica has taken over its slots. */
  async killMaster(port: number): Promise<void> {
    await this.nodes.find((n) => n.port === port)!.stop('SIGKILL')
    this.admins.get(port)?.disconnect()
    this.admins.delete(port)
    await waitFor(`a replica promoted in place of ${port}`, async () => !(await this.masters()).some((m) => m.port === port), { timeoutMs: 30_000, intervalMs: 100 })
    await this.waitUntilHealthy()
  }

  /** Stops every node by PID and removes the cluster's folder. */
  async stop(): Promise<void> {
    for (const client of this.admins.values()) client.disconnect()
    this.admins.clear()
    await Promise.all(this.nodes.map((node) => node.stop('SIGKILL')))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** One line's sorted sets: its waiting users and its active (admitted) users. */
export interface QueueSets {
  waiting: string
  active: string
}

/**
 * Every queue line of the deployment `prefix`, found by SCAN on each master rather than by
 * building key names, so it holds whether the queue keys are per deployment or per concert.
 */
export async function queueLines(redis: RedisClient, prefix: string): Promise<QueueSets[]> {
  const lines = new Map<string, QueueSets>()
  for (const master of redisMasters(redis)) {
    const batches = master.scanStream({ match: redisKeyPattern(prefix), count: 1000 }) as AsyncIterable<string[]>
    for await (const keys of batches) {
      for (const key of keys) {
        const line = /^(.*):(waiting|active)$/.exec(key)?.[1]
        if (line) lines.set(line, { waiting: `${line}:waiting`, active: `${line}:active` })
      }
    }
  }
  return [...lines.values()]
}

/**
 * The queue's invariants in one reading of each line: nobody is both waiting and active, and no
 * more than `maxActive` hold a live active slot (scored by its expiry, counted from Redis' own
 * clock). Both sets of a line share a slot, so ZINTERCARD works on a Cluster.
 */
export async function queueViolations(redis: RedisClient, prefix: string, maxActive: number): Promise<string[]> {
  const problems: string[] = []
  for (const line of await queueLines(redis, prefix)) {
    const [seconds, micros] = await redis.time()
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
    const [both, active] = await Promise.all([redis.zintercard(2, line.waiting, line.active), redis.zcount(line.active, `(${now}`, '+inf')])
    if (both > 0) problems.push(`${both} users both waiting and active in ${line.active}`)
    if (active > maxActive) problems.push(`${active} active in ${line.active}, above ${maxActive}`)
  }
  return problems
}
