import { mkdirSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { cpus, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { createConnection } from 'mysql2/promise'
import type { Config } from '../../src/config.js'
import { parseMysqlUrl } from '../../src/db/connection.js'
import type { Pinning, Settings } from './server.js'

export type Command = 'bench' | 'cluster' | 'ramp' | 'relief' | 'rush' | 'scale' | 'serializer'

export interface Machine {
  cpuModel: string
  cores: number
  ramGb: number
  os: string
  node: string
  mysql: string
  redis: string
}

/** The machine as rows of a two-column report table; each report appends what it knows besides. */
function machineRows(machine: Machine): Array<[string, string | number]> {
  return [
    ['CPU', machine.cpuModel],
    ['cores', machine.cores],
    ['RAM (GB)', machine.ramGb],
    ['OS', machine.os],
    ['Node.js', machine.node],
    ['MySQL/MariaDB', machine.mysql],
    ['Redis', machine.redis],
  ]
}

export interface Table {
  headers: string[]
  rows: Array<Array<string | number>>
}

export interface Section {
  heading: string
  text?: string
  table?: Table
}

export interface Chart {
  file: string
  title: string
}

/** What results.json holds: everything the report was made from, rows as measured. */
export interface RunRecord<TRow> {
  command: Command
  /** The flags it ran with. */
  argv: string[]
  quick: boolean
  startedAt: string
  finishedAt: string
  machine: Machine
  /** 1-minute load average at the start and the end: other work on the machine skews every number. */
  loadAverage: [start: number, end: number]
  pinning: Pinning
  /** How the measured servers ran: compiled JavaScript or TypeScript through tsx. */
  runtime: string
  /** The lab's own knobs: durations, connections, users, ... */
  parameters: Record<string, string | number | boolean>
  /** What the measured servers were started with, on top of the defaults of src/config.ts. */
  settings: Settings
  rows: TRow[]
  notes: string[]
  charts: Chart[]
}

/** Full runs go to bench/results/ (committed), quick ones to bench/results/quick/ (ignored). */
export function defaultResultsRoot(quick: boolean): string {
  return fileURLToPath(new URL(quick ? '../results/quick/' : '../results/', import.meta.url))
}

/** <root>/<timestamp>-<command>/, created. */
export function createRunFolder(root: string, command: Command, startedAt: Date): string {
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z')
  const dir = join(root, `${stamp}-${command}`)
  mkdirSync(dir, { recursive: true })
  return dir
}

async function mysqlVersion(config: Config): Promise<string> {
  try {
    const connection = await createConnection({ uri: parseMysqlUrl(config.MYSQL_URL).serverUrl })
    try {
      const [rows] = await connection.query('SELECT VERSION() AS version')
      return String((rows as Array<{ version: string }>)[0]?.version)
    } finally {
      await connection.end()
    }
  } catch (error) {
    return `unknown (${(error as Error).message})`
  }
}

async function redisVersion(config: Config): Promise<string> {
  const redis = new Redis(config.REDIS_URL, { lazyConnect: true })
  try {
    await redis.connect()
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown'
  } catch (error) {
    return `unknown (${(error as Error).message})`
  } finally {
    redis.disconnect()
  }
}

export async function describeMachine(config: Config): Promise<Machine> {
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown'
  return {
    cpuModel,
    cores: cpus().length,
    ramGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${process.platform} ${release()}`,
    node: process.version,
    mysql: await mysqlVersion(config),
    redis: await redisVersion(config),
  }
}

/** Numbers for people: no false precision. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '-'
  if (Math.abs(value) >= 100) return String(Math.round(value))
  return String(Math.round(value * 10) / 10)
}

const cell = (value: string | number) => (typeof value === 'number' ? formatNumber(value) : value)

function markdownTable(table: Table): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`
  return [line(table.headers), line(table.headers.map(() => '---')), ...table.rows.map((row) => line(row.map(cell)))].join('\n')
}

/** The same table, aligned for a terminal. */
export function consoleTable(table: Table): string {
  const rows = [table.headers, ...table.rows.map((row) => row.map(cell))]
  const widths = table.headers.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)))
  const line = (row: string[]) => row.map((value, column) => (column === 0 ? value.padEnd(widths[column]!) : value.padStart(widths[column]!))).join('  ')
  return [line(rows[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(line)].join('\n')
}

export interface ReportText {
  title: string
  /** A paragraph under the title: what was measured and how. */
  intro: string
  sections: Section[]
}

/** Writes results.json (the raw record) and report.md (machine, settings, tables, charts). */
export async function writeRun<TRow>(dir: string, record: RunRecord<TRow>, text: ReportText): Promise<void> {
  await writeFile(join(dir, 'results.json'), `${JSON.stringify(record, null, 2)}\n`)
  const { machine } = record
  const parts = [
    `# ${text.title}`,
    text.intro,
    `Run: \`${[`npm run ${record.command === 'bench' ? 'bench' : `bench:${record.command}`}`, ...(record.argv.length ? ['--', ...record.argv] : [])].join(' ')}\`, ${record.startedAt} to ${record.finishedAt}. Raw numbers: \`results.json\`.`,
    '## Machine',
    markdownTable({
      headers: ['', ''],
      rows: [
        ...machineRows(machine),
        ['load average (1 min) at start, end', record.loadAverage.map(formatNumber).join(', ')],
        ['CPU pinning', record.pinning.note],
        ['servers ran as', record.runtime],
      ],
    }),
    '## Parameters',
    markdownTable({ headers: ['parameter', 'value'], rows: Object.entries(record.parameters).map(([key, value]) => [key, String(value)]) }),
    '## Server settings',
    'Environment of the measured servers, over the defaults of `src/config.ts`.',
    markdownTable({ headers: ['setting', 'value'], rows: Object.entries(record.settings).map(([key, value]) => [key, String(value)]) }),
    ...text.sections.flatMap((section) => [`## ${section.heading}`, section.text ?? '', section.table ? markdownTable(section.table) : '']),
    ...(record.notes.length ? ['## Notes', record.notes.map((note) => `- ${note}`).join('\n')] : []),
    '## Charts',
    record.charts.map((chart) => `### ${chart.title}\n\n![${chart.title}](${chart.file})`).join('\n\n'),
  ]
  await writeFile(join(dir, 'report.md'), `${parts.filter(Boolean).join('\n\n')}\n`)
}
