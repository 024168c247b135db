/**
 * Writes `.env.example` and the configuration table of README.md from the config schema, so the
 * documented variables, defaults and meanings cannot drift from what the server reads.
 * `npm run env:example`.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { ConfigSchema } from '../src/config.js'

type Documented = { description?: string; default?: unknown; minimum?: number; maximum?: number; anyOf?: { const?: unknown }[] }

const variables = () => Object.entries(ConfigSchema.properties) as [string, Documented][]

export function renderEnvExample(): string {
  const lines = ['# seatrush configuration: copy to .env and change what you need.', '# Every variable is optional; the value shown is the default.', '']
  for (const [name, schema] of variables()) {
    lines.push(`# ${schema.description ?? ''}`)
    if (name === 'WORKERS') lines.push('# Default: the number of CPUs (os.availableParallelism()).', `# ${name}=`)
    else if (schema.default === undefined) lines.push(`# ${name}=`)
    else lines.push(`${name}=${String(schema.default)}`)
    lines.push('')
  }
  return lines.join('\n')
}

const README_START = '<!-- config-table:start (npm run env:example) -->'
const README_END = '<!-- config-table:end -->'

function allowed(schema: Documented): string {
  if (schema.anyOf) return schema.anyOf.map((option) => `\`${String(option.const)}\``).join(' \\| ')
  if (schema.minimum !== undefined && schema.maximum !== undefined) return `${schema.minimum}..${schema.maximum}`
  return ''
}

export function renderConfigTable(): string {
  const rows = variables().map(([name, schema]) => {
    const fallback = name === 'WORKERS' ? 'CPU count' : schema.default === undefined ? '(unset)' : `\`${String(schema.default)}\``
    return `| \`${name}\` | ${fallback} | ${allowed(schema)} | ${schema.description ?? ''} |`
  })
  return [README_START, '| variable | default | allowed | meaning |', '|---|---|---|---|', ...rows, README_END].join('\n')
}

/** README.md with its configuration table replaced by the current one. */
export function readmeWithConfigTable(readme: string): string {
  const start = readme.indexOf(README_START)
  const end = readme.indexOf(README_END)
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${README_START} ... ${README_END} markers`)
  return readme.slice(0, start) + renderConfigTable() + readme.slice(end + README_END.length)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync('.env.example', renderEnvExample())
  writeFileSync('README.md', readmeWithConfigTable(readFileSync('README.md', 'utf8')))
  console.log('wrote .env.example and the configuration table of README.md')
}
