import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { View, parse } from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

export type Row = Record<string, string | number>

interface Axis {
  field: string
  title: string
}

export interface LineChart {
  title: string
  rows: Row[]
  /** `integer`: ticks on whole numbers only (worker counts). */
  x: Axis & { log?: boolean; integer?: boolean }
  y: Axis
  /** One colour per value of this field. */
  series?: Axis
  /** One dash pattern per value of this field (a second way to split lines). */
  dash?: Axis
}

export interface BarChart {
  title: string
  rows: Row[]
  /** One group of bars per value of this field (its values label the axis). */
  category: Pick<Axis, 'field'>
  value: Axis
  /** One bar per value of this field within each group. */
  series: Axis
}

const look = { width: 560, height: 300, background: 'white', config: { legend: { labelLimit: 400 } } } as const

// The legend of a dash pattern shows the pattern itself, drawn as a black line (not a coloured dot).
const dashLegend = { symbolType: 'stroke', symbolSize: 400, encode: { symbols: { update: { stroke: { value: 'black' }, strokeWidth: { value: 2 } } } } }

export function lineChart(chart: LineChart): TopLevelSpec {
  return {
    ...look,
    title: chart.title,
    data: { values: chart.rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: chart.x.field,
        type: 'quantitative',
        title: chart.x.title,
        scale: chart.x.log ? { type: 'log', base: 2 } : {},
        axis: chart.x.integer ? { tickMinStep: 1, format: 'd' } : {},
      },
      y: { field: chart.y.field, type: 'quantitative', title: chart.y.title },
      ...(chart.series ? { color: { field: chart.series.field, type: 'nominal', title: chart.series.title } } : {}),
      ...(chart.dash ? { strokeDash: { field: chart.dash.field, type: 'nominal', title: chart.dash.title, legend: dashLegend } } : {}),
    },
  }
}

export function barChart(chart: BarChart): TopLevelSpec {
  return {
    ...look,
    title: chart.title,
    data: { values: chart.rows },
    mark: 'bar',
    encoding: {
      // The labels (endpoint names) say what the axis is; a title beside them would overlap them.
      y: { field: chart.category.field, type: 'nominal', title: null, sort: null, axis: { labelLimit: 400 } },
      x: { field: chart.value.field, type: 'quantitative', title: chart.value.title },
      yOffset: { field: chart.series.field, type: 'nominal' },
      color: { field: chart.series.field, type: 'nominal', title: chart.series.title },
    },
  }
}

/** Each case's throughput and p99 as bars beside each other, both as ratios to the run's baseline. */
export function baselineRatioChart(chart: {
  title: string
  category: string
  throughput: string
  rows: Array<{ case: string; throughputRatio: number; p99Ratio: number }>
}): TopLevelSpec {
  const round = (ratio: number) => Math.round(ratio * 100) / 100
  return barChart({
    title: chart.title,
    rows: chart.rows.flatMap((row) => [
      { [chart.category]: row.case, measure: `${chart.throughput} ÷ baseline`, ratio: round(row.throughputRatio) },
      { [chart.category]: row.case, measure: 'p99 ÷ baseline', ratio: round(row.p99Ratio) },
    ]),
    category: { field: chart.category },
    value: { field: 'ratio', title: 'ratio to the baseline' },
    series: { field: 'measure', title: 'measure' },
  })
}

/** Vega-Lite compiled to Vega and rendered headless (no browser, no canvas) to SVG text. */
async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** Writes `<name>.svg` into the run's folder and answers the file name. */
export async function writeChart(dir: string, name: string, spec: TopLevelSpec): Promise<string> {
  const file = `${name}.svg`
  await writeFile(join(dir, file), await renderSvg(spec))
  return file
}
