import { existsSync, rmSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import type { TopLevelSpec } from 'vega-lite'
import type { Config } from '../../src/config.js'
import { writeChart } from './charts.js'
import { readFlags, type Flags } from './cli.js'
import { consoleTable, createRunFolder, defaultResultsRoot, describeMachine, formatNumber, writeRun, type Command, type ReportText, type Table } from './report.js'
import { changedSettings, pinLoadGenerator, serverRuntime, stopAll, type Pinning } from './server.js'
import { validateRun } from './validate-run.js'

export interface Lab {
  flags: Flags
  pinning: Pinning
  /** One progress line on stderr, stamped with the time since the start. */
  progress: (message: string) => void
}

export interface Outcome<TRow> extends ReportText {
  /** The server config the measurements ran with (per-run changes such as WORKERS aside). */
  config: Config
  parameters: Record<string, string | number | boolean>
  rows: TRow[]
  notes: string[]
  charts: Array<{ name: string; title: string; spec: TopLevelSpec }>
  /** What the console shows at the end (the report holds the same and more). */
  summary: Table[]
}

export interface LabOptions {
  /** Why this command never pins, whatever the flags say. */
  unpinned?: string
}

/**
 * The frame every lab command runs in: flags, CPU pinning, the results folder, a guarantee that
 * no server outlives the run (error, Ctrl-C or normal end), and at the end the report, the
 * charts and a check of the folder's shape.
 */
export async function runLab<TRow>(command: Command, measure: (lab: Lab) => Promise<Outcome<TRow>>, options: LabOptions = {}): Promise<void> {
  const startedAt = new Date()
  const loadAtStart = loadavg()[0]!
  let flags: Flags
  try {
    flags = readFlags()
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`)
    process.exitCode = 2
    return
  }
  const pinning = pinLoadGenerator(options.unpinned ?? (flags.pin ? undefined : '--no-pin'))
  const dir = createRunFolder(flags.out ?? defaultResultsRoot(flags.quick), command, startedAt)
  // A run that fails or is interrupted leaves no half-empty folder among the results.
  process.on('exit', () => {
    if (!existsSync(join(dir, 'results.json'))) rmSync(dir, { recursive: true, force: true })
  })
  const progress = (message: string) => {
    const seconds = Math.round((Date.now() - startedAt.getTime()) / 1000)
    process.stderr.write(`[${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}] ${message}\n`)
  }
  progress(`${command}${flags.quick ? ' --quick' : ''}: results in ${dir}`)
  progress(`CPU pinning ${pinning.note}`)
  try {
    progress('preparing the servers (compiled once per version of the sources)')
    const runtime = serverRuntime().note
    progress(`servers run as ${runtime}`)
    const outcome = await measure({ flags, pinning, progress })
    await stopAll()
    const loadAverage: [number, number] = [loadAtStart, loadavg()[0]!]
    const machine = await describeMachine(outcome.config)
    const notes = [...outcome.notes]
    // Other work on the machine skews every number; past one runnable process per core, say so.
    // Only the load at the start is other work's alone: by the end the last minute's average
    // counts the run's own servers, MySQL threads and load generator (a ramp to 2,048
    // connections takes a quiet 2-core machine from 0.5 to 8 by itself).
    if (loadAtStart > machine.cores) {
      notes.push(`The machine was busy with other work as this run started (load average ${formatNumber(loadAtStart)} on ${machine.cores} cores, ${formatNumber(loadAverage[1])} at the end): the numbers are indicative; rerun on a quiet machine before acting on them.`)
    } else if (loadAverage[1] > machine.cores) {
      notes.push(`The load average rose from ${formatNumber(loadAtStart)} to ${formatNumber(loadAverage[1])} on ${machine.cores} cores during the run, mostly the run's own servers, MySQL and load generator; other work cannot be told apart from them.`)
    }
    progress('writing the report and charts')
    const charts = []
    for (const chart of outcome.charts) charts.push({ file: await writeChart(dir, chart.name, chart.spec), title: chart.title })
    await writeRun(
      dir,
      {
        command,
        argv: process.argv.slice(2),
        quick: flags.quick,
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine,
        loadAverage,
        pinning,
        runtime,
        parameters: outcome.parameters,
        settings: changedSettings(outcome.config),
        rows: outcome.rows,
        notes,
        charts,
      },
      outcome,
    )
    process.stdout.write(`\n${outcome.summary.map(consoleTable).join('\n\n')}\n\n`)
    for (const note of notes) process.stdout.write(`- ${note}\n`)
    const problems = validateRun(dir)
    if (problems.length) throw new Error(`the run's folder is malformed:\n${problems.join('\n')}`)
    process.stdout.write(`\nreport: ${dir}/report.md\n`)
  } catch (error) {
    process.stderr.write(`${command} failed: ${(error as Error).stack ?? String(error)}\n`)
    await stopAll()
    process.exitCode = 1
  }
}
