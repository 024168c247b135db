import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t, { type Test } from 'tap'
import { endpointTitle, endpoints } from '../bench/lib/endpoints.js'
import { validateRun } from '../bench/lib/validate-run.js'
import { loadConfig } from '../src/config.js'
import { dropStore, ownStore, storeBeside } from './helpers/store.js'

// The lab's commands end to end, each in its shortest form, checked for the shape of what they
// write (never for speed): each needs real MySQL and Redis and starts real servers.
// The sum of the commands' own limits below: a slow machine fails a stuck command, not the file.
t.setTimeout(1_320_000)

const ROOT = resolve(import.meta.dirname, '..')
const store = ownStore('smoke', randomBytes(4).toString('hex'))
const storeFlags = Object.entries(store).flatMap(([name, value]) => ['--set', `${name}=${value}`])
const out = mkdtempSync(join(tmpdir(), 'seatrush-bench-smoke-'))

t.teardown(async () => {
  rmSync(out, { recursive: true, force: true })
  // bench/run.ts gives its thin reference a store of its own beside this one, bench/rush.ts its join burst.
  for (const used of [store, storeBeside(store, 'thin'), storeBeside(store, 'burst')]) await dropStore(loadConfig({ ...process.env, ...used }))
})

/** Runs one lab command to its end and answers the run folder it wrote. */
async function runCommand(t: Test, script: string, args: string[], timeoutMs: number): Promise<string> {
  const root = join(out, script.replace(/\W/g, '-'))
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--quick', '--out', root, ...storeFlags, ...args], {
    cwd: ROOT,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  // A stuck command is stopped by its pid; its own handler then stops the servers it started.
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
  const code = await new Promise<number | null>((done) => child.once('exit', (exitCode) => done(exitCode)))
  clearTimeout(timer)
  // On failure the assertion's own name carries the command's last lines, so a summary that lists
  // only failing assertions still says why.
  const lastLines = code === 0 ? '' : `; it printed last: ${output.trim().split('\n').slice(-6).join(' | ').slice(-1200)}`
  t.equal(code, 0, `${script} exits 0${lastLines}`, { output: output.slice(-4000) })
  const runs = existsSync(root) ? readdirSync(root) : []
  t.equal(runs.length, 1, 'it wrote one run folder')
  return join(root, runs[0] ?? 'missing')
}

t.test('bench/run.ts --quick: a report with every endpoint, its references and the charts', async (t) => {
  const dir = await runCommand(t, 'bench/run.ts', ['--duration', '1'], 150_000)
  const titles = endpoints.map(endpointTitle)
  t.same(validateRun(dir, { endpoints: titles }), [], 'the folder has the promised shape')

  const record = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))
  t.equal(record.command, 'bench')
  for (const server of ['app', 'thin']) {
    t.same(
      record.rows.filter((row: { server: string }) => row.server === server).map((row: { endpoint: string }) => row.endpoint),
      titles,
      `${server}: one row per endpoint`,
    )
  }
  t.ok(record.rows.some((row: { server: string }) => row.server === 'hello'), 'the hello-world reference was measured')
  t.same(record.charts.map((chart: { file: string }) => chart.file).sort(), ['ratio.svg', 'throughput.svg'])
  const report = readFileSync(join(dir, 'report.md'), 'utf8')
  t.match(report, /\| endpoint \| req\/s \| p50 ms \| p99 ms \| non-2xx \| thin req\/s \| app ÷ thin \| app ÷ hello \| app ÷ hello per CPU \| RSS max MB \|/)
})

t.test('bench/cluster.ts --quick: a row per worker count with CPU per component', async (t) => {
  const dir = await runCommand(t, 'bench/cluster.ts', ['--duration', '1', '--workers', '3'], 150_000)
  t.same(validateRun(dir), [], 'the folder has the promised shape')
  const record = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))
  t.same(record.rows.map((row: { workers: number }) => row.workers), [1, 2, 3])
  t.same(record.charts.map((chart: { file: string }) => chart.file).sort(), ['cpu.svg', 'p99.svg', 'throughput.svg', 'usl.svg'])
  t.match(readFileSync(join(dir, 'report.md'), 'utf8'), /## Universal Scalability Law: how many workers, how many hosts\n\nFitted by least squares/, 'the USL fitted over the three sizes')
})

t.test('bench/ramp.ts --quick: every stage of both cases, shedding off and on', async (t) => {
  const dir = await runCommand(t, 'bench/ramp.ts', ['--duration', '1', '--connections', '4,32', '--hall', '2000'], 150_000)
  t.same(validateRun(dir), [], 'the folder has the promised shape')
  const record = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))
  t.equal(record.rows.length, 2 * 2 * 2, 'two cases x shedding off/on x two stages')
  t.same([...new Set(record.rows.map((row: { shed: boolean }) => row.shed))].sort(), [false, true])
  t.equal(record.charts.length, 4)
})

t.test('bench/serializer.ts --quick: both measurements per hall size, the same bytes either way', async (t) => {
  const dir = await runCommand(t, 'bench/serializer.ts', ['--duration', '1', '--sizes', '50,500'], 150_000)
  t.same(validateRun(dir), [], 'the folder has the promised shape')
  const record = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))
  t.equal(record.command, 'serializer')
  t.same(record.rows.map((row: { seats: number }) => row.seats), [50, 500])
  t.same(
    record.rows.map((row: { inProcess: { identical: boolean }; http: { identical: boolean } }) => [row.inProcess.identical, row.http.identical]),
    [[true, true], [true, true]],
    'the pool and the event loop built the same bytes, in process and over HTTP',
  )
  for (const row of record.rows as Array<{ seats: number; http: { inline: { okPerS: number }; worker: { okPerS: number }; rounds: Array<Record<'inline' | 'worker', { failures: number }>> } }>) {
    t.ok(row.http.inline.okPerS > 0 && row.http.worker.okPerS > 0, `${row.seats} seats: both servers answered maps 2xx over HTTP`)
    t.same(row.http.rounds.map((round) => round.inline.failures + round.worker.failures), row.http.rounds.map(() => 0), `${row.seats} seats: no non-2xx answer or error`)
  }
  t.same(record.rows.map((row: { query: { chosenIndex: string } }) => row.query.chosenIndex), ['seats_detail_map', 'seats_detail_map'], 'MySQL reads each map through the index that holds its columns')
  for (const row of record.rows as Array<{ seats: number; query: { index: { mysqlMsPerOp: number }; rowPerSeat: { mysqlMsPerOp: number } } }>) {
    t.ok(row.query.index.mysqlMsPerOp > 0 && row.query.rowPerSeat.mysqlMsPerOp > 0, `${row.seats} seats: mysqld's CPU per map measured both ways`)
  }
  t.equal(record.pinning.applied, false, 'the pool threads keep every core')
  t.same(record.charts.map((chart: { file: string }) => chart.file).sort(), ['event-loop.svg', 'ratio.svg'])
})

t.test('bench/rush.ts --quick: the join burst and a small hall sold out, with calls, MySQL, CPU and fairness', async (t) => {
  const dir = await runCommand(t, 'bench/rush.ts', ['--users', '150', '--hall', '30', '--connections', '20'], 150_000)
  t.same(validateRun(dir), [], 'the folder has the promised shape')
  const record = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))
  t.equal(record.command, 'rush')
  t.same(record.rows.map((row: { phase: string }) => row.phase), ['burst', 'rush'], 'a row for the join burst and one for the rush')
  const rush = record.rows[1]
  t.equal(rush.users, 150)
  t.equal(rush.soldTwice, 0, 'no seat sold twice')
  t.equal(rush.ledgerMismatches, 0, 'the ledger balances')
  t.equal(rush.otherViolations, 0, 'every other invariant holds')
  t.ok(rush.sold > 0 && rush.sold <= 30, 'seats were sold, never more than the hall holds')
  for (const call of ['join', 'poll', 'seat map', 'hold', 'pay']) t.type(rush.calls[call]?.p99Ms, 'number', `the ${call} calls were timed`)
  t.type(rush.fairness?.meanDisplacement, 'number', 'fairness was measured')
  t.same(record.charts.map((chart: { file: string }) => chart.file).sort(), ['burst.svg', 'latency.svg', 'progress.svg'])
  const report = readFileSync(join(dir, 'report.md'), 'utf8')
  for (const heading of ['## Join burst (npm start defaults)', '## Rush', '## Calls during the rush', '## Fairness']) t.match(report, heading)
})

t.test('bench/relief.ts --quick: every lever against the baseline, and the pool beside large seat maps', async (t) => {
  const dir = await runCommand(t, 'bench/relief.ts', ['--duration', '1', '--users', '100', '--hall', '500', '--sizes', '500', '--connections', '16'], 240_000)
  t.same(validateRun(dir), [], 'the folder has the promised shape')
  const record = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))
  t.equal(record.command, 'relief')
  type Row = { part: string; case: string; settings: Record<string, unknown>; goodputRatio: number; hall?: { seats: number } }
  const levers = record.rows.filter((row: Row) => row.part === 'levers')
  t.same(
    levers.map((row: Row) => row.case.replace(/ \(\d+\)$/, '')),
    ['baseline', 'more workers', 'cached reads', 'piscina pool', 'shedding', 'all levers'],
    'the baseline, one lever at a time, then all',
  )
  t.same(levers[0].settings, { WORKERS: 1, CONCERT_CACHE_MS: 0, SERIALIZER: 'inline', SHED_LOAD: false }, 'the naive baseline')
  t.equal(levers[0].goodputRatio, 1, 'ratios are to the baseline')
  const pool = record.rows.filter((row: Row) => row.part === 'pool')
  t.same(pool.map((row: Row) => [row.hall?.seats, row.settings.SERIALIZER]), [[500, 'inline'], [500, 'worker'], [500, 'inline'], [500, 'worker']], 'inline and pooled, with one worker and one per core')
  t.same(record.charts.map((chart: { file: string }) => chart.file).sort(), ['pool.svg', 'relief.svg'])
  const report = readFileSync(join(dir, 'report.md'), 'utf8')
  t.match(report, /^# .+\n\n\*\*All levers together served .+\*\*\n\n!\[[^\]]+\]\(relief\.svg\)/, 'the report opens with its finding and the chart that shows it')
})

t.test('bench/scale.ts --quick: every setup against the baseline, and each call of the flow alone', async (t) => {
  const dir = await runCommand(t, 'bench/scale.ts', ['--duration', '1', '--users', '100', '--hall', '2000', '--connections', '16'], 300_000)
  t.same(validateRun(dir), [], 'the folder has the promised shape')
  const record = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))
  t.equal(record.command, 'scale')
  type Row = { part: string; case: string; throughputRatio: number; okPerS: number }
  const setups = record.rows.filter((row: Row) => row.part === 'setups')
  t.same(
    setups.map((row: Row) => row.case),
    ['baseline: one host, one Redis, no replica', 'Redis Cluster of 3 masters', 'read replica', 'nginx, one host', 'nginx, two hosts'],
    'the baseline, then each engine',
  )
  t.equal(setups[0].throughputRatio, 1, 'ratios are to the baseline')
  t.ok(setups.every((row: Row) => row.okPerS > 0), 'every setup answered 2xx through its engines')
  const calls = record.rows.filter((row: Row) => row.part === 'calls').map((row: Row) => row.case.split(' (')[0])
  for (const call of ['join', 'poll', 'dates', 'seat map', 'hold', 'payment']) t.ok(calls.includes(call), `${call} was measured alone`)
  t.same(record.charts.map((chart: { file: string }) => chart.file).sort(), ['calls.svg', 'cpu.svg', 'scale.svg'])
  t.match(readFileSync(join(dir, 'report.md'), 'utf8'), /^# .+\n\n\*\*Against the baseline's .+\*\*\n\n!\[[^\]]+\]\(scale\.svg\)/, 'the report opens with its finding and the chart that shows it')
})
