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

export function keyTag(prefix: string): string {
  return `{${prefix}}`
}

export default fp(
  async function redis(app) {
    const client = createRedis(app.config.REDIS_URL)
    client.on('error', (error) => app.log.debug({ err: error }, 'redis connection error'))
    await client.connect()
    const tag = keyTag(app.config.REDIS_KEY_PREFIX)
    app.decorate('redis', client)
    app.decorate('redisKey', (name: string) => `${tag}:${name}`)
    app.addHook('onClose', async () => {
      await client.quit().catch(() => client.disconnect())
    })
  },
  { name: 'redis', dependencies: ['config'] },
)
