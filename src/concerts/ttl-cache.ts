/**
 * A small read-through cache for the rush's hottest reads: an entry lives `ttlMs`, and
 * concurrent misses for one key share a single load instead of each querying MySQL.
 */
export function createTtlCache<K, V>(ttlMs: number, maxEntries = 1000) {
  const entries = new Map<K, { value: V; expiresAt: number }>()
  const loading = new Map<K, Promise<V>>()

  return async function get(key: K, load: () => Promise<V>): Promise<V> {
    if (ttlMs <= 0) return load()
    const hit = entries.get(key)
    if (hit && hit.expiresAt > Date.now()) return hit.value
    const pending = loading.get(key)
    if (pending) return pending
    const promise = load()
      .then((value) => {
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as K)
        entries.set(key, { value, expiresAt: Date.now() + ttlMs })
        return value
      })
      .finally(() => loading.delete(key))
    loading.set(key, promise)
    return promise
  }
}
