import fp from 'fastify-plugin'
import { Cluster, Redis } from 'ioredis'
import type { Config } from '../config.js'

/** A single Redis or a Redis Cluster: both run the same commands and scripts (defineCommand). */
export type RedisClient = Redis | Cluster

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient
    /** Prefixes a key with the deployment's hash tag, so every key lands in one Redis Cluster slot. */
    redisKey: (name: string) => string
  }
}

// Fail fast while Redis is down (the route answers 503) instead of queueing commands in memory.
const failFast = { maxRetriesPerRequest: 1, commandTimeout: 2000, connectTimeout: 2000 }
const reconnectDelay = (attempt: number) => Math.min(attempt * 100, 1000)

/** `host:port,host:port` (REDIS_CLUSTER_NODES) as ioredis startup nodes. */
export function parseClusterNodes(list: string): { host: string; port: number }[] {
  return list.split(',').map((node) => {
    const [host, port] = node.trim().split(':')
    return { host: host!, port: Number(port) }
  })
}

/**
 * The client for REDIS_CLUSTER_NODES when set, else for REDIS_URL. On a Cluster, ioredis follows
 * MOVED and ASK replies (a resharding) and, when a master is lost, retries on the same command
 * every `retryDelayOnFailover` while it reloads the slot map, up to `maxRedirections` times; past
 * that, or past `commandTimeout`, the call fails and the route answers 503.
 */
export function createRedis(config: Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): RedisClient {
  if (!config.REDIS_CLUSTER_NODES) {
    return new Redis(config.REDIS_URL, {
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: reconnectDelay,
      // Commands issued in one turn of the event loop leave in one write: a burst of joins costs
      // one syscall per batch rather than three per join (rate limit, catalog, enqueue).
      enableAutoPipelining: true,
      ...failFast,
    })
  }
  return new Cluster(parseClusterNodes(config.REDIS_CLUSTER_NODES), {
    lazyConnect: true,
    enableOfflineQueue: false,
    clusterRetryStrategy: reconnectDelay,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    slotsRefreshTimeout: 2000,
    // A promoted replica is found within this even when no call happens to hit the old master.
    slotsRefreshInterval: 2000,
    redisOptions: failFast,
  })
}

/**
 * A key of the deployment named `prefix`. The prefix is the key's hash tag, so all of the
 * deployment's keys that are not per concert land in one Redis Cluster slot.
 */
export function redisKey(prefix: string, name: string): string {
  return `{${prefix}}:${name}`
}

/** A SCAN/KEYS pattern that matches every key of the deployment named `prefix`. */
export function redisKeyPattern(prefix: string): string {
  return `{${prefix}[}:]*`
}

/** The masters of `redis`: itself for a single Redis, each master node for a Cluster (SCAN, INFO). */
export function redisMasters(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis]
}

export default fp(
  async function redis(app) {
    const client = createRedis(app.config)
    client.on('error', (error) => app.log.debug({ err: error }, 'redis connection error'))
    await client.connect()
    app.decorate<RedisClient>('redis', client)
    app.decorate('redisKey', (name: string) => redisKey(app.config.REDIS_KEY_PREFIX, name))
    app.addHook('onClose', async () => {
      // QUIT closes what answers; whatever does not within a second is dropped. disconnect() then
      // also stops a Cluster client's reconnect and slot-refresh timers, which a client caught
      // mid-reconnect (a master just failed over) can otherwise keep running after QUIT.
      let bound: NodeJS.Timeout | undefined
      await Promise.race([client.quit().catch(() => {}), new Promise((done) => (bound = setTimeout(done, 1000)))])
      clearTimeout(bound)
      client.disconnect()
    })
  },
  { name: 'redis', dependencies: ['config'] },
)
