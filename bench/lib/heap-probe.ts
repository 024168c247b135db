// Preloaded into a measured server (node --import) when the lab needs worker heap use: each
// cluster worker writes its V8 heap in use to BENCH_PROBE_DIR/<pid>.json twice a second.
// The server's own code is untouched; the cost is one small file write per 500 ms.
import cluster from 'node:cluster'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { probeFile } from './proc.js'

const dir = process.env.BENCH_PROBE_DIR
if (dir && !cluster.isPrimary) {
  mkdirSync(dir, { recursive: true })
  const file = probeFile(dir, process.pid)
  const write = () => {
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify({ heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20 }))
      renameSync(`${file}.tmp`, file)
    } catch {
      // The lab removed the folder while this worker drains: nothing left to report to.
    }
  }
  setInterval(write, 500).unref()
}
