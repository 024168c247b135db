import { performance } from 'node:perf_hooks'

/**
 * The users the queue answered ACTIVE for a concert in the last `ttlMs`, kept by one worker so
 * read-only pages (seat maps, bookable days) need not ask Redis on every request. Only what
 * Redis said is remembered, only for `ttlMs`, and only reads consult it: a user who leaves or
 * whose slot ends is refused reads within `ttlMs` (at once by the worker that saw the leave),
 * holds and payments at once.
 */
export function createActiveReads(ttlMs: number, maxEntries = 50_000) {
  // Insertion order is age order (a renewal moves the key to the end), so the first key is the oldest.
  const until = new Map<string, number>()
  const keyOf = (userId: number, concertId: number) => `${concertId}:${userId}`

  return {
    /** Whether Redis answered ACTIVE for this user and concert less than `ttlMs` ago. */
    has(userId: number, concertId: number): boolean {
      if (ttlMs <= 0) return false
      const key = keyOf(userId, concertId)
      const expiresAt = until.get(key)
      if (expiresAt === undefined) return false
      if (performance.now() < expiresAt) return true
      until.delete(key)
      return false
    },
    /** Records an ACTIVE answer from Redis, asked no earlier than `askedAt` (performance.now()). */
    remember(userId: number, concertId: number, askedAt: number): void {
      if (ttlMs <= 0) return
      const key = keyOf(userId, concertId)
      until.delete(key)
      if (until.size >= maxEntries) until.delete(until.keys().next().value as string)
      until.set(key, askedAt + ttlMs)
    },
    /** This worker saw the user leave the concert's queue (or pay): stop letting them read at once. */
    forget(userId: number, concertId: number): void {
      until.delete(keyOf(userId, concertId))
    },
  }
}

export type ActiveReads = ReturnType<typeof createActiveReads>
