import type { Config } from '../../src/config.js'
import { databaseUrl, dropDatabase, parseMysqlUrl } from '../../src/db/connection.js'
import { createRedis, redisKeyPattern, redisMasters } from '../../src/plugins/redis.js'

/** Where a test file or a lab command keeps its data: a database and a Redis key prefix. */
export type Store = Pick<Config, 'MYSQL_URL' | 'REDIS_KEY_PREFIX'>

/**
 * A store of its own, `seatrush_<kind>_<name>` and `<kind>-<name>`, on the MySQL server of
 * MYSQL_URL: test files and lab commands running at once never see each other's data.
 */
export function ownStore(kind: string, name: string): Store {
  return {
    MYSQL_URL: databaseUrl(process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/seatrush', `seatrush_${kind}_${name}`),
    REDIS_KEY_PREFIX: `${kind}-${name}`,
  }
}

/** A second store beside `store`: its database and its prefix with `suffix` appended. */
export function storeBeside(store: Store, suffix: string): Store {
  return {
    MYSQL_URL: databaseUrl(store.MYSQL_URL, `${parseMysqlUrl(store.MYSQL_URL).database}_${suffix}`),
    REDIS_KEY_PREFIX: `${store.REDIS_KEY_PREFIX}-${suffix}`,
  }
}

/**
 * Drops the store's database and deletes its Redis keys, found with SCAN on every master (a
 * Cluster's keys are spread over its masters). Deleted one key a command: on a Cluster a
 * multi-key DEL (or a pipeline) must stay within one slot.
 */
export async function dropStore(config: Store & Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): Promise<void> {
  await dropDatabase(config.MYSQL_URL)
  const redis = createRedis(config)
  try {
    await redis.connect()
    for (const master of redisMasters(redis)) {
      const batches = master.scanStream({ match: redisKeyPattern(config.REDIS_KEY_PREFIX), count: 1000 }) as AsyncIterable<string[]>
      for await (const keys of batches) await Promise.all(keys.map((key) => redis.del(key)))
    }
  } finally {
    redis.disconnect()
  }
}
