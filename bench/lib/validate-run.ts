import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Fields every row of each command's results.json carries (dotted paths to numbers, unless typed). */
const rowFields: Record<string, Record<string, 'number' | 'string' | 'boolean' | 'object'>> = {
  bench: {
    server: 'string',
    endpoint: 'string',
    connections: 'number',
    responses: 'number',
    rps: 'number',
    'latencyMs.p50': 'number',
    'latencyMs.p99': 'number',
    non2xx: 'number',
    statuses: 'object',
    rssMaxMb: 'number',
    'cpu.used': 'number',
    'cpu.busy': 'number',
    'cpu.loadGenerator': 'number',
  },
  cluster: {
    workers: 'number',
    rps: 'number',
    'latencyMs.p99': 'number',
    errors: 'number',
    'cpu.app': 'number',
    'cpu.mysql': 'number',
    'cpu.redis': 'number',
    'cpu.loadGenerator': 'number',
    'idleCpu.mysql': 'number',
    'idleCpu.redis': 'number',
    serverCpusBusy: 'number',
    okPerS: 'number',
    'cpuMsPerRequest.app': 'number',
    'cpuMsPerRequest.mysql': 'number',
    'cpuMsPerRequest.redis': 'number',
    'cpuMsPerRequest.loadGenerator': 'number',
  },
  ramp: {
    case: 'string',
    shed: 'boolean',
    connections: 'number',
    rps: 'number',
    goodput: 'number',
    'latencyMs.p99': 'number',
    shed503: 'number',
    errors: 'number',
    heapMaxMb: 'number',
    rssMaxMb: 'number',
    workersDied: 'number',
    mysqlCpu: 'number',
    'cpu.used': 'number',
    'cpu.busy': 'number',
    'cpu.loadGenerator': 'number',
  },
  rush: {
    phase: 'string',
    users: 'number',
    connections: 'number',
    durationS: 'number',
    joinsPerS: 'number',
    allJoins2xx: 'boolean',
    'calls.join.count': 'number',
    'calls.join.p50Ms': 'number',
    'calls.join.p99Ms': 'number',
    'calls.join.statuses': 'object',
    'mysql.statements': 'number',
    'mysql.statementsPerJoin': 'number',
    'mysql.globalQuestions': 'number',
    'cpu.app': 'number',
    'cpu.mysql': 'number',
    'cpu.redis': 'number',
    'cpu.loadGenerator': 'number',
  },
  relief: {
    part: 'string',
    case: 'string',
    settings: 'object',
    okPerS: 'number',
    goodputRatio: 'number',
    'latencyMs.p99': 'number',
    p99Ratio: 'number',
    shed503: 'number',
    errors: 'number',
    'cpu.used': 'number',
    'cpu.loadGenerator': 'number',
  },
  scale: {
    part: 'string',
    case: 'string',
    okPerS: 'number',
    throughputRatio: 'number',
    'latencyMs.p99': 'number',
    p99Ratio: 'number',
    non2xx: 'number',
    errors: 'number',
    replicaSelects: 'number',
    'cpu.app': 'number',
    'cpu.mysqlPrimary': 'number',
    'cpu.mysqlReplica': 'number',
    'cpu.redis': 'number',
    'cpu.nginx': 'number',
    'cpu.loadGenerator': 'number',
    'cpuMsPerRequest.app': 'number',
    'cpuMsPerRequest.mysqlPrimary': 'number',
    'cpuMsPerRequest.mysqlReplica': 'number',
    'cpuMsPerRequest.redis': 'number',
    'cpuMsPerRequest.nginx': 'number',
    'cpuMsPerRequest.loadGenerator': 'number',
  },
  serializer: {
    seats: 'number',
    'inProcess.jsonBytes': 'number',
    'inProcess.identical': 'boolean',
    'inProcess.stringify.p50Ms': 'number',
    'inProcess.inline.opsPerS': 'number',
    'inProcess.worker.opsPerS': 'number',
    'inProcess.inline.mainThreadMsPerOp': 'number',
    'inProcess.worker.mainThreadMsPerOp': 'number',
    'http.identical': 'boolean',
    'http.inline.okPerS': 'number',
    'http.worker.okPerS': 'number',
    'http.inline.p99Ms': 'number',
    'http.worker.p99Ms': 'number',
    'http.inline.failures': 'number',
    'query.chosenIndex': 'string',
    'query.index.mysqlMsPerOp': 'number',
    'query.rowPerSeat.mysqlMsPerOp': 'number',
    'query.index.opsPerS': 'number',
    'query.rowPerSeat.opsPerS': 'number',
    'query.index.p50Ms': 'number',
    'query.rowPerSeat.p50Ms': 'number',
  },
}

const machineFields = ['cpuModel', 'cores', 'ramGb', 'os', 'node', 'mysql', 'redis']

function at(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), value)
}

function isType(value: unknown, type: string): boolean {
  if (type === 'number') return typeof value === 'number' && Number.isFinite(value)
  if (type === 'object') return typeof value === 'object' && value !== null
  return typeof value === type
}

export interface Expectations {
  /** Endpoint titles the bench table must list. */
  endpoints?: string[]
}

/**
 * Checks a run's folder has the shape the lab promises, never its speed: results.json with the
 * command's fields, report.md with its sections and every chart, and each chart a real SVG.
 * Answers the problems found; none means the folder is well-formed.
 */
export function validateRun(dir: string, expect: Expectations = {}): string[] {
  const problems: string[] = []
  const read = (file: string) => {
    const path = join(dir, file)
    if (!existsSync(path)) {
      problems.push(`${file} is missing`)
      return undefined
    }
    return readFileSync(path, 'utf8')
  }

  const json = read('results.json')
  const report = read('report.md')
  if (json === undefined || report === undefined) return problems
  let record: Record<string, any>
  try {
    record = JSON.parse(json)
  } catch (error) {
    return [`results.json does not parse: ${(error as Error).message}`]
  }

  const fields = rowFields[record.command]
  if (!fields) return [`results.json: unknown command ${JSON.stringify(record.command)}`]
  for (const [key, type] of Object.entries({ quick: 'boolean', runtime: 'string', startedAt: 'string', finishedAt: 'string', pinning: 'object', parameters: 'object', settings: 'object' })) {
    if (!isType(record[key], type)) problems.push(`results.json: ${key} is not a ${type}`)
  }
  if (Number.isNaN(Date.parse(record.startedAt)) || Number.isNaN(Date.parse(record.finishedAt))) problems.push('results.json: startedAt/finishedAt are not dates')
  for (const field of machineFields) if (at(record.machine, field) === undefined) problems.push(`results.json: machine.${field} is missing`)
  if (!isType(record.pinning?.applied, 'boolean')) problems.push('results.json: pinning.applied is missing')
  if (!Array.isArray(record.notes)) problems.push('results.json: notes is not a list')
  if (!Array.isArray(record.rows) || record.rows.length === 0) problems.push('results.json: rows is empty')
  for (const [index, row] of (Array.isArray(record.rows) ? record.rows : []).entries()) {
    for (const [path, type] of Object.entries(fields)) {
      if (!isType(at(row, path), type)) problems.push(`results.json: rows[${index}].${path} is not a ${type}`)
    }
  }

  for (const heading of ['## Machine', '## Parameters', '## Server settings', '## Charts']) {
    if (!report.includes(`\n${heading}\n`)) problems.push(`report.md has no "${heading}" section`)
  }
  if (!/^\| .+ \|\n\|( --- \|)+$/m.test(report)) problems.push('report.md has no table')

  if (!Array.isArray(record.charts) || record.charts.length === 0) problems.push('results.json: charts is empty')
  for (const chart of Array.isArray(record.charts) ? record.charts : []) {
    const svg = read(chart.file)
    if (svg !== undefined && !(/^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/.test(svg) && svg.trimEnd().endsWith('</svg>'))) {
      problems.push(`${chart.file} is not an SVG document`)
    }
    if (!report.includes(`](${chart.file})`)) problems.push(`report.md does not show ${chart.file}`)
  }

  for (const endpoint of expect.endpoints ?? []) {
    if (!report.includes(`| ${endpoint} |`)) problems.push(`report.md's table has no row for ${endpoint}`)
    if (!record.rows.some((row: { endpoint?: string; server?: string }) => row.endpoint === endpoint && row.server === 'app')) {
      problems.push(`results.json has no app row for ${endpoint}`)
    }
  }
  return problems
}
