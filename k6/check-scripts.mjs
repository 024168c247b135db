// Checks the k6 scripts without a k6 binary: `node k6/check-scripts.mjs` from the repository root.
// Node cannot load them (they import k6/http and friends, which only k6 provides), so esbuild,
// which the repository already installs through tsx, bundles each scenario with the k6 modules
// left external: that parses every file as an ES module, resolves every local import and fails
// on an imported name the module does not export. It also refuses remote imports (k6 would fetch
// them when a run starts) and checks that each scenario exports what k6 runs.
// k6/original/ is the report's code byte for byte and is not checked.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const k6Dir = fileURLToPath(new URL('.', import.meta.url));
const SKIP = new Set(['original', 'results', 'node_modules']);
const REMOTE_IMPORT = /\b(?:from|import)\s*\(?\s*['"]https?:/;
const EXPECTED_EXPORTS = ['default', 'options', 'setup', 'handleSummary'];

function scripts(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return SKIP.has(entry.name) ? [] : scripts(join(dir, entry.name));
    return entry.name.endsWith('.js') ? [join(dir, entry.name)] : [];
  });
}

const problems = new Set();
const files = scripts(k6Dir);
for (const file of files) {
  if (REMOTE_IMPORT.test(readFileSync(file, 'utf8'))) problems.add(`${relative(k6Dir, file)}: imports a remote module`);
}
for (const entry of files.filter((file) => /^scenario-.*\.js$/.test(relative(k6Dir, file)))) {
  const name = relative(k6Dir, entry);
  try {
    const { metafile } = buildSync({
      entryPoints: [entry],
      bundle: true,
      write: false,
      metafile: true,
      format: 'esm',
      platform: 'neutral',
      external: ['k6', 'k6/*'],
      logLevel: 'silent',
    });
    const exported = Object.values(metafile.outputs)[0].exports;
    const missing = EXPECTED_EXPORTS.filter((expected) => !exported.includes(expected));
    if (missing.length > 0) problems.add(`${name}: does not export ${missing.join(', ')}`);
  } catch (error) {
    for (const { text, location } of error.errors ?? [{ text: String(error) }]) {
      problems.add(`${location ? `${relative(k6Dir, join(process.cwd(), location.file))}:${location.line}` : name}: ${text}`);
    }
  }
}

if (problems.size > 0) {
  console.error([...problems].join('\n'));
  process.exit(1);
}
console.log(`k6 scripts: ${files.length} files parse as ES modules, resolve their imports, import nothing remote`);
