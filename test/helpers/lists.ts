/** `count` consecutive numbers from `from`: user ids, seat numbers. */
export const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

/** Runs `work` for each item with at most `concurrency` at once; resolves with all results, in order. */
export async function eachConcurrently<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = []
  let next = 0
  const lane = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await work(items[index]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane))
  return results
}
