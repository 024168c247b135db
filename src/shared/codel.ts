/**
 * Controlled delay (CoDel), as Facebook applies it to server queues ("Fail at Scale", ACM Queue
 * 2015): a queue is overloaded when what waits in it has waited longer than `targetMs` for at
 * least `intervalMs` without a break, that is, a standing queue rather than a burst draining.
 * One sojourn at or under the target ends the overload. Bursts that drain within the target are
 * served whole; only a queue that stays long sheds.
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
      this.#overloaded = false
      return
    }
    this.#aboveSince ??= now
    if (now - this.#aboveSince >= this.intervalMs) this.#overloaded = true
  }

  get overloaded(): boolean {
    return this.#overloaded
  }
}

/** How often the queues are sampled; in the overloaded state a waiter gets one sample period. */
export const SHED_SAMPLE_MS = 10
