/** Latencies and statuses of one kind of call, as the report shows them. */
export interface CallStats {
  count: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Answers by status; "0" is no answer (refused, reset, timed out). */
  statuses: Record<string, number>
}

export function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!
}

const round = (ms: number) => Math.round(ms * 10) / 10

export function callStats(samples: Array<{ ms: number; status: number }>): CallStats {
  const sorted = samples.map((sample) => sample.ms).sort((a, b) => a - b)
  const statuses: Record<string, number> = {}
  for (const sample of samples) statuses[sample.status] = (statuses[sample.status] ?? 0) + 1
  return { count: samples.length, p50Ms: round(percentile(sorted, 0.5)), p99Ms: round(percentile(sorted, 0.99)), maxMs: round(sorted.at(-1) ?? 0), statuses }
}

/** "200: 9990, 503: 10" */
export const statusText = (statuses: Record<string, number>) =>
  Object.entries(statuses)
    .map(([status, count]) => `${status === '0' ? 'no answer' : status}: ${count}`)
    .join(', ') || '-'

/** Whether there were answers and every one had a 2xx status. */
export const all2xx = (stats: CallStats) => stats.count > 0 && Object.entries(stats.statuses).every(([status]) => /^2\d\d$/.test(status))
