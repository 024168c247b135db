/**
 * Gunther's Universal Scalability Law: throughput at size N is
 *
 *   X(N) = λN / (1 + σ(N − 1) + κN(N − 1))
 *
 * λ is the throughput of one worker, σ the share of work that serializes (contention: a lock,
 * one Redis, one core shared) and κ the cost of keeping workers coherent with each other
 * (crosstalk), which makes throughput fall past a peak at N* = √((1 − σ) / κ).
 */
export interface UslModel {
  lambda: number
  sigma: number
  kappa: number
}

export interface Measured {
  n: number
  throughput: number
}

export const uslThroughput = ({ lambda, sigma, kappa }: UslModel, n: number): number => (lambda * n) / (1 + sigma * (n - 1) + kappa * n * (n - 1))

/** The size of the highest throughput; Infinity when κ is 0 (throughput never falls). */
export const uslPeak = ({ sigma, kappa }: UslModel): number => (kappa > 0 ? Math.sqrt(Math.max(0, 1 - sigma) / kappa) : Infinity)

// For fixed σ and κ the best λ has a closed form: X = λ·g(N) is linear in λ.
function bestLambda(points: Measured[], sigma: number, kappa: number): { lambda: number; error: number } {
  const g = points.map(({ n }) => n / (1 + sigma * (n - 1) + kappa * n * (n - 1)))
  const lambda = points.reduce((sum, p, i) => sum + p.throughput * g[i]!, 0) / g.reduce((sum, value) => sum + value * value, 0)
  const error = points.reduce((sum, p, i) => sum + (p.throughput - lambda * g[i]!) ** 2, 0)
  return { lambda, error }
}

/**
 * σ, κ and λ minimizing the squared error of X(N) over the measured sizes, with σ and κ kept
 * non-negative (a negative one would mean super-linear scaling, which a CPU-bound server does
 * not show; noise can suggest it). λ is solved exactly for each (σ, κ); σ and κ by a pattern
 * search started from Gunther's linearized fit (N/X is a quadratic in N). Needs at least three
 * distinct sizes.
 */
export function fitUsl(points: Measured[]): UslModel {
  if (new Set(points.map((p) => p.n)).size < 3) throw new Error('the USL fit needs throughput at three or more sizes')
  if (points.some((p) => !(p.throughput > 0))) throw new Error('the USL fit needs positive throughput at every size')

  // N/X = a + b(N − 1) + cN(N − 1) with a = 1/λ, b = σ/λ, c = κ/λ: linear least squares.
  const rows = points.map(({ n, throughput }) => ({ x: [1, n - 1, n * (n - 1)], y: n / throughput }))
  const [a, b, c] = solveNormalEquations(rows)
  let sigma = a > 0 ? Math.max(0, b / a) : 0
  let kappa = a > 0 ? Math.max(0, c / a) : 0

  let best = bestLambda(points, sigma, kappa).error
  let step = Math.max(0.1, sigma, kappa)
  // Shrink the step until it no longer moves the fit; each round tries the four neighbours.
  while (step > 1e-12) {
    let moved = false
    for (const [ds, dk] of [[step, 0], [-step, 0], [0, step], [0, -step]] as const) {
      const s = sigma + ds
      const k = kappa + dk
      if (s < 0 || k < 0) continue
      const { error } = bestLambda(points, s, k)
      if (error < best) {
        best = error
        sigma = s
        kappa = k
        moved = true
        break
      }
    }
    if (!moved) step /= 2
  }
  return { lambda: bestLambda(points, sigma, kappa).lambda, sigma, kappa }
}

/** Least squares for y ≈ x·β with three unknowns, through the normal equations. */
function solveNormalEquations(rows: Array<{ x: number[]; y: number }>): [number, number, number] {
  const m = [0, 1, 2].map((i) => [0, 1, 2].map((j) => rows.reduce((sum, row) => sum + row.x[i]! * row.x[j]!, 0)))
  const v = [0, 1, 2].map((i) => rows.reduce((sum, row) => sum + row.x[i]! * row.y, 0))
  const det = (q: number[][]) =>
    q[0]![0]! * (q[1]![1]! * q[2]![2]! - q[1]![2]! * q[2]![1]!) -
    q[0]![1]! * (q[1]![0]! * q[2]![2]! - q[1]![2]! * q[2]![0]!) +
    q[0]![2]! * (q[1]![0]! * q[2]![1]! - q[1]![1]! * q[2]![0]!)
  const d = det(m)
  if (Math.abs(d) < 1e-300) return [rows[0]!.y, 0, 0]
  // Cramer's rule: each unknown is the determinant with its column replaced by v.
  const solve = (column: number) => det(m.map((row, i) => row.map((value, j) => (j === column ? v[i]! : value)))) / d
  return [solve(0), solve(1), solve(2)]
}
