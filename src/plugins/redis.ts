import fp from 'fastify-plugin'
import { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
    /** Prefixes a key with the deployment's hash tag, so every key lands in one Redis Cluster slot. */
    redisKey: (name: string) => string
  }
}

export function createRedis(url: string): Redis {
  return new Redis(url, {
    lazyConnect: true,
    // Fail fast while Redis is down (the route answers 503) instead of queueing commands in memory.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2000,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
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

export default fp(
  async function redis(app) {
    const client = createRedis(app.config.REDIS_URL)
    client.on('error', (error) => app.log.debug({ err: error }, 'redis connection error'))
    await client.connect()
    app.decorate('redis', client)
    app.decorate('redisKey', (name: string) => redisKey(app.config.REDIS_KEY_PREFIX, name))
    app.addHook('onClose', async () => {
      await client.quit().catch(() => client.disconnect())
    })
  },
  { name: 'redis', dependencies: ['config'] },
)
