/**
 * Controlled delay (CoDel), as Facebook applies it to server queues ("Fail at Scale", ACM Queue
 * 2015): a queue is overloaded once what waits in it has waited longer than `targetMs` for at
 * least `intervalMs` without a break, that is, a standing queue rather than a burst draining.
 * The overload lasts until the queue drains (the owner calls `drained`): while it lasts, the
 * owner keeps the queue short (new arrivals refused while it does not move, the newest served
 * first) instead of letting it grow back to the target.
 */
export class Codel {
  /** When sojourns went above the target, or undefined while they are under it. */
  #aboveSince: number | undefined
  #overloaded = false

  constructor(
    readonly targetMs: number,
    readonly intervalMs: number,
  ) {}

  /** Records how long the oldest waiter has waited, at `now` (ms, monotonic). */
  observe(sojournMs: number, now: number): void {
    if (sojournMs <= this.targetMs) {
      this.#aboveSince = undefined
      return
    }
    this.#aboveSince ??= now
    if (now - this.#aboveSince >= this.intervalMs) this.#overloaded = true
  }

  /** Nothing waits any more: the overload, if any, is over. */
  drained(): void {
    this.#aboveSince = undefined
    this.#overloaded = false
  }

  get overloaded(): boolean {
    return this.#overloaded
  }
}

/**
 * How often the queues are sampled. In the overloaded state a pool line whose oldest waiter has
 * waited longer than this is not moving, and the door refuses new requests (FB's short timeout).
 */
export const SHED_SAMPLE_MS = 10
