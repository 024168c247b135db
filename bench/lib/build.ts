import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
// Inside node_modules so the compiled files resolve their packages exactly as the sources do.
const cacheRoot = join(repoRoot, 'node_modules', '.cache', 'seatrush-bench')
const sources = ['src', 'bench/reference', 'bench/lib/heap-probe.ts', 'bench/lib/proc.ts']

function files(path: string): string[] {
  const absolute = join(repoRoot, path)
  if (!existsSync(absolute)) return []
  if (!statSync(absolute).isDirectory()) return [absolute]
  return readdirSync(absolute, { recursive: true, encoding: 'utf8' })
    .map((name) => join(absolute, name))
    .filter((file) => /\.(ts|lua)$/.test(file))
    .sort()
}

export interface Build {
  /** Folder holding src/, bench/reference/ and bench/lib/ as JavaScript. */
  dir: string
  /** What the report says about how the servers ran. */
  note: string
}

/**
 * The measured servers run as `npm start` runs them: compiled JavaScript, not TypeScript through
 * tsx, whose loader costs every process tens of MB and its start-up seconds. Compiled once per
 * content of the sources (a hash names the folder), so repeated and parallel runs share it.
 */
export function compiledServers(): Build {
  const inputs = [join(repoRoot, 'tsconfig.json'), ...sources.flatMap(files)]
  const hash = createHash('sha256')
  for (const file of inputs) hash.update(relative(repoRoot, file)).update(readFileSync(file))
  const dir = join(cacheRoot, hash.digest('hex').slice(0, 16))
  if (existsSync(join(dir, 'src', 'main.js'))) return { dir, note: `compiled JavaScript (${relative(repoRoot, dir)})` }

  const staging = `${dir}.tmp-${process.pid}`
  mkdirSync(staging, { recursive: true })
  const tsconfig = join(staging, 'tsconfig.json')
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(repoRoot, 'tsconfig.json'),
      compilerOptions: { outDir: staging, rootDir: repoRoot, sourceMap: false, noEmit: false },
      include: sources.map((source) => join(repoRoot, source)),
    }),
  )
  const tsc = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig], { encoding: 'utf8' })
  // Type errors still emit JavaScript (someone may be mid-edit); only missing output is fatal.
  if (!existsSync(join(staging, 'src', 'main.js'))) {
    rmSync(staging, { recursive: true, force: true })
    throw new Error(`compiling the servers failed:\n${tsc.stdout}${tsc.stderr}`)
  }
  for (const lua of sources.flatMap(files).filter((file) => file.endsWith('.lua'))) {
    copyFileSync(lua, join(staging, relative(repoRoot, lua)))
  }
  rmSync(tsconfig)
  try {
    renameSync(staging, dir)
  } catch {
    // A parallel run finished the same build first.
    rmSync(staging, { recursive: true, force: true })
  }
  // Builds of older sources go after a day; a run still using one has long since started its servers.
  for (const old of readdirSync(cacheRoot)) {
    const path = join(cacheRoot, old)
    if (path !== dir && Date.now() - statSync(path).mtimeMs > 86_400_000) rmSync(path, { recursive: true, force: true })
  }
  const typeErrors = tsc.status === 0 ? '' : '; tsc reported type errors in the sources at build time'
  return { dir, note: `compiled JavaScript (${relative(repoRoot, dir)})${typeErrors}` }
}
