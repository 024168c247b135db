import { performance } from 'node:perf_hooks'

export interface VersionedCacheOptions<K, T> {
  /** The key's version as every worker and host sees it (null: never bumped). */
  version: (key: K) => Promise<string | null>
  /** Builds the value from the store; `validUntil` (epoch ms) is when time alone changes it. */
  load: (key: K) => Promise<{ value: T; validUntil: number | null }>
  /** A value is served without asking the version again for this long (0: ask on every read). */
  checkMs: number
  /** No value outlives this (0: no cache): the bound when a bump was lost. */
  maxAgeMs: number
  maxEntries?: number
}

interface Entry<T> {
  value: T
  version: string
  /** performance.now() when the version this value was checked against was asked for. */
  checkedAt: number
  /** Epoch ms after which the value is built again whatever the version says. */
  expiresAt: number
}

// A value whose lapse time has already passed by the database's clock but not by ours is kept
// this long rather than rebuilt on every read; showing a lapsed hold as held is the safe side.
const MIN_LIFETIME_MS = 10

/**
 * Values rebuilt only when their version changes: a read is answered from memory while the
 * version, asked at most `checkMs` before the read arrived, is the one the value was built at.
 *
 * Why that is never staler than `checkMs`: a writer commits, then bumps the version; a build
 * asks the version first and queries after, so it sees every commit whose bump it saw. A read
 * that arrives `checkMs` after a bump finished is answered with a version asked after the bump.
 */
export function createVersionedCache<K, T>(options: VersionedCacheOptions<K, T>) {
  const { checkMs, maxAgeMs, maxEntries = 1000 } = options
  const entries = new Map<K, Entry<T>>()
  // One version request per key in flight, which reads arriving within checkMs of it share...
  const checks = new Map<K, { askedAt: number; value: Promise<T> }>()
  // ... and one build per key and version, which every read that saw that version shares.
  const builds = new Map<K, { version: string; entry: Promise<Entry<T>> }>()

  const keep = (key: K, entry: Entry<T>) => {
    const current = entries.get(key)
    // A slow build must not replace what a build at a later version stored meanwhile (versions
    // only grow; were Redis emptied, the later one expires within maxAgeMs and is replaced).
    if (current && Date.now() < current.expiresAt && Number(current.version) > Number(entry.version)) return
    if (!current && entries.size >= maxEntries) entries.delete(entries.keys().next().value as K)
    entries.set(key, entry)
  }

  const build = (key: K, version: string, askedAt: number): Promise<Entry<T>> => {
    const running = builds.get(key)
    if (running?.version === version) return running.entry
    const entry = options.load(key).then(({ value, validUntil }) => {
      const now = Date.now()
      const expiresAt = Math.min(Math.max(validUntil ?? Infinity, now + MIN_LIFETIME_MS), now + maxAgeMs)
      const built = { value, version, checkedAt: askedAt, expiresAt }
      keep(key, built)
      return built
    })
    const finished = () => {
      if (builds.get(key)?.entry === entry) builds.delete(key)
    }
    entry.then(finished, finished)
    builds.set(key, { version, entry })
    return entry
  }

  const check = (key: K, askedAt: number): Promise<T> => {
    const value = options.version(key).then(async (asked) => {
      const version = asked ?? '0'
      const cached = entries.get(key)
      if (cached && cached.version === version && Date.now() < cached.expiresAt) {
        cached.checkedAt = Math.max(cached.checkedAt, askedAt)
        return cached.value
      }
      return (await build(key, version, askedAt)).value
    })
    const finished = () => {
      if (checks.get(key)?.value === value) checks.delete(key)
    }
    value.then(finished, finished)
    checks.set(key, { askedAt, value })
    return value
  }

  return {
    async get(key: K): Promise<T> {
      if (maxAgeMs <= 0) return (await options.load(key)).value
      const arrivedAt = performance.now()
      const cached = entries.get(key)
      if (cached && arrivedAt - cached.checkedAt <= checkMs && Date.now() < cached.expiresAt) return cached.value
      const inFlight = checks.get(key)
      if (inFlight && inFlight.askedAt >= arrivedAt - checkMs) return inFlight.value
      return check(key, arrivedAt)
    },
    /** Drops every value this process holds (its own writes could not bump the version). */
    clear() {
      entries.clear()
    },
  }
}
