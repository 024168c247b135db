import cluster from 'node:cluster'
import type { FastifyInstance } from 'fastify'

/**
 * Runs a reference server the way the app runs: a primary that forks WORKERS workers sharing
 * PORT. Once all listen it prints `{"msg":"<name> is serving","pids":[...]}`; SIGTERM stops it.
 */
export async function serveReference(name: string, build: () => Promise<FastifyInstance>): Promise<void> {
  const workers = Number(process.env.WORKERS ?? 1)
  if (cluster.isPrimary) {
    let listening = 0
    let stopping = false
    for (let i = 0; i < workers; i++) {
      cluster.fork().on('message', (message) => {
        if (message !== 'listening' || ++listening < workers) return
        const pids = Object.values(cluster.workers ?? {}).map((worker) => worker?.process.pid)
        process.stdout.write(`${JSON.stringify({ msg: `${name} is serving`, pids })}\n`)
      })
    }
    cluster.on('exit', (worker, code, signal) => {
      if (!stopping) process.stderr.write(`${name}: worker ${worker.process.pid} died (${signal ?? code})\n`)
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(stopping ? 0 : 1)
    })
    const stop = () => {
      stopping = true
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    return
  }
  const app = await build()
  await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
  process.send?.('listening')
  // A Ctrl-C reaches the whole process group; the primary turns it into SIGTERM for us.
  process.on('SIGINT', () => {})
  process.on('SIGTERM', () => void app.close().finally(() => process.exit(0)))
}
