/**
 * Writes `.env.example` from the config schema, so the documented variables, defaults and
 * meanings cannot drift from what the server reads. `npm run env:example`.
 */
import { writeFileSync } from 'node:fs'
import { ConfigSchema } from '../src/config.js'

export function renderEnvExample(): string {
  const lines = ['# seatrush configuration: copy to .env and change what you need.', '# Every variable is optional; the value shown is the default.', '']
  for (const [name, schema] of Object.entries(ConfigSchema.properties) as [string, { description?: string; default?: unknown }][]) {
    lines.push(`# ${schema.description ?? ''}`)
    if (name === 'WORKERS') lines.push('# Default: the number of CPUs (os.availableParallelism()).', `# ${name}=`)
    else if (schema.default === undefined) lines.push(`# ${name}=`)
    else lines.push(`${name}=${String(schema.default)}`)
    lines.push('')
  }
  return lines.join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync('.env.example', renderEnvExample())
  console.log('wrote .env.example')
}
