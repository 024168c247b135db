import { setTimeout as delay } from 'node:timers/promises'

export interface WaitOptions {
  /** Default 10 s. */
  timeoutMs?: number
  /** How often `check` is asked (default 20 ms). */
  intervalMs?: number
}

type Falsy = undefined | null | false | 0 | ''

/**
 * Asks `check` until it answers something truthy and resolves with that; rejects when `check`
 * throws, or after `timeoutMs` with a message naming `what`. For a condition, never a fixed sleep.
 */
export async function waitFor<T>(what: string, check: () => T | Falsy | Promise<T | Falsy>, { timeoutMs = 10_000, intervalMs = 20 }: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value as T
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await delay(intervalMs)
  }
}
