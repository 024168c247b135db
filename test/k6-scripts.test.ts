import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'

const k6Dir = join(import.meta.dirname, '..', 'k6')
const REMOTE_IMPORT = /\b(?:from|import)\s*\(?\s*['"]https?:/

/** Every script k6 could be given: the scenarios, their library and the report's originals. */
function scripts(dir = k6Dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return entry.name === 'results' ? [] : scripts(join(dir, entry.name))
    return entry.name.endsWith('.js') ? [join(dir, entry.name)] : []
  })
}
const entryPoints = () => scripts().filter((file) => /(^|\/)scenario-[^/]*\.js$/.test(relative(k6Dir, file)))

const k6OnPath = spawnSync('k6', ['version'], { encoding: 'utf8' })
const k6Version = k6OnPath.status === 0 ? k6OnPath.stdout.trim() : undefined

t.test('no k6 script imports a remote module: a run needs no network beyond the server', async (t) => {
  const files = scripts()
  t.ok(files.length >= 13, `${files.length} scripts, k6/original/ included`)
  for (const file of files) t.notMatch(readFileSync(file, 'utf8'), REMOTE_IMPORT, relative(k6Dir, file))
})

t.test('check-scripts.mjs passes the scenarios and names a script that breaks its rules', async (t) => {
  const ours = spawnSync(process.execPath, [join(k6Dir, 'check-scripts.mjs')], { encoding: 'utf8' })
  t.equal(ours.status, 0, ours.stderr || ours.stdout)
  t.match(ours.stdout, /parse as ES modules, resolve their imports, import nothing remote/)

  // A copy of the checker beside broken scripts, under the repository so it finds esbuild.
  const dataDir = join(import.meta.dirname, '..', '.data')
  mkdirSync(dataDir, { recursive: true })
  const dir = mkdtempSync(join(dataDir, 'k6-check-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  copyFileSync(join(k6Dir, 'check-scripts.mjs'), join(dir, 'check-scripts.mjs'))
  writeFileSync(join(dir, 'scenario-remote.js'), "import { x } from 'https://jslib.k6.io/x/1.0.0/index.js'\nexport default function () { x() }\n")
  writeFileSync(join(dir, 'scenario-missing.js'), "import { nothing } from './lib.js'\nexport const options = {}\nexport function setup() {}\nexport function handleSummary() {}\nexport default function () { nothing() }\n")
  writeFileSync(join(dir, 'lib.js'), 'export const something = 1\n')
  writeFileSync(join(dir, 'scenario-syntax.js'), 'export default function ( {\n')
  const broken = spawnSync(process.execPath, [join(dir, 'check-scripts.mjs')], { encoding: 'utf8' })
  t.equal(broken.status, 1)
  t.match(broken.stderr, /scenario-remote\.js: imports a remote module/)
  t.match(broken.stderr, /No matching export in "[^"]*lib\.js" for import "nothing"/)
  t.match(broken.stderr, /scenario-syntax\.js:\d+: /)
})

t.test('k6 inspect accepts every scenario and every original script', { skip: k6Version ? false : 'no k6 binary on PATH: k6 inspect not run (the esbuild check above still ran)' }, async (t) => {
  t.comment(k6Version!)
  for (const file of entryPoints()) {
    const inspected = spawnSync('k6', ['inspect', file], { encoding: 'utf8', timeout: 60_000 })
    t.equal(inspected.status, 0, `${relative(k6Dir, file)}: ${inspected.stderr.trim().split('\n').at(-1) ?? ''}`)
    if (inspected.status !== 0) continue
    const options = JSON.parse(inspected.stdout) as { stages: unknown[] | null; scenarios: Record<string, unknown> | null }
    t.ok(options.stages?.length || Object.keys(options.scenarios ?? {}).length, `${relative(k6Dir, file)}: k6 read its stages or scenarios`)
  }
})
