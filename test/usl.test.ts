import t from 'tap'
import { fitUsl, uslPeak, uslThroughput, type UslModel } from '../bench/lib/usl.js'

const sizes = [1, 2, 3, 4, 6, 8, 12, 16]
const measure = (model: UslModel, noise: (i: number) => number = () => 1) => sizes.map((n, i) => ({ n, throughput: uslThroughput(model, n) * noise(i) }))

t.test('the fit recovers σ, κ and λ from exact throughput', async (t) => {
  const truth = { lambda: 950, sigma: 0.06, kappa: 0.004 }
  const fit = fitUsl(measure(truth))
  t.ok(Math.abs(fit.lambda - truth.lambda) / truth.lambda < 1e-4, `λ ${fit.lambda}`)
  t.ok(Math.abs(fit.sigma - truth.sigma) < 1e-4, `σ ${fit.sigma}`)
  t.ok(Math.abs(fit.kappa - truth.kappa) < 1e-5, `κ ${fit.kappa}`)
  t.ok(Math.abs(uslPeak(fit) - uslPeak(truth)) < 0.1, `peak at N = ${uslPeak(fit)}`)
})

t.test('the fit recovers the parameters from throughput with ±2% noise', async (t) => {
  const truth = { lambda: 400, sigma: 0.15, kappa: 0.01 }
  // A fixed pattern of errors, so the test cannot pass or fail by chance.
  const noise = [1.02, 0.98, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01]
  const fit = fitUsl(measure(truth, (i) => noise[i]!))
  t.ok(Math.abs(fit.lambda - truth.lambda) / truth.lambda < 0.05, `λ ${fit.lambda}`)
  t.ok(Math.abs(fit.sigma - truth.sigma) < 0.03, `σ ${fit.sigma}`)
  t.ok(Math.abs(fit.kappa - truth.kappa) < 0.003, `κ ${fit.kappa}`)
  for (const n of [4, 8, 16, 64]) {
    const error = Math.abs(uslThroughput(fit, n) - uslThroughput(truth, n)) / uslThroughput(truth, n)
    t.ok(error < 0.1, `X(${n}) within 10% (${(error * 100).toFixed(1)}%)`)
  }
})

t.test('linear scaling fits σ = κ = 0; pure contention fits κ = 0 and never peaks', async (t) => {
  const linear = fitUsl(sizes.map((n) => ({ n, throughput: 120 * n })))
  t.ok(Math.abs(linear.lambda - 120) < 1e-3 && linear.sigma < 1e-6 && linear.kappa < 1e-8, JSON.stringify(linear))
  const amdahl = fitUsl(measure({ lambda: 300, sigma: 0.2, kappa: 0 }))
  t.ok(Math.abs(amdahl.sigma - 0.2) < 1e-4 && amdahl.kappa < 1e-7, JSON.stringify(amdahl))
  t.equal(uslPeak({ ...amdahl, kappa: 0 }), Infinity)
})

t.test('noise that suggests super-linear scaling is fitted with σ and κ kept at zero or above', async (t) => {
  const fit = fitUsl([
    { n: 1, throughput: 100 },
    { n: 2, throughput: 230 },
    { n: 3, throughput: 330 },
  ])
  t.ok(fit.sigma >= 0 && fit.kappa >= 0, JSON.stringify(fit))
})

t.test('fewer than three sizes is refused rather than fitted', async (t) => {
  t.throws(() => fitUsl([{ n: 1, throughput: 100 }, { n: 2, throughput: 180 }]), /three or more sizes/)
})
