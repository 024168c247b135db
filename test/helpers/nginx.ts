import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import type { Test } from 'tap'
import { freePort } from '../../src/runtime/services.js'
import { send } from './http.js'
import { isAlive, type Exit } from './server-process.js'
import { waitFor } from './wait.js'

/** The config compose runs, with its placeholders. */
export const NGINX_TEMPLATE = resolve(import.meta.dirname, '../../scripts/compose/nginx.conf.template')

/**
 * The template with every `${NAME}` replaced by `values[NAME]`, as the nginx image's envsubst step
 * does. A placeholder left without a value throws, so the template and its callers cannot drift.
 */
export function renderNginxConfig(values: Record<string, string>, template = readFileSync(NGINX_TEMPLATE, 'utf8')): string {
  const missing = new Set<string>()
  const text = template.replace(/\$\{([A-Z][A-Z0-9_]*)\}/g, (_, name: string) => {
    const value = values[name]
    if (value === undefined) missing.add(name)
    return value ?? ''
  })
  if (missing.size > 0) throw new Error(`no value for ${[...missing].join(', ')} in ${NGINX_TEMPLATE}`)
  return text
}

/** The nginx binary: on PATH, or where Debian puts it (sbin is not on every user's PATH). */
function nginxBinary(): string {
  if (spawnSync('nginx', ['-v']).status === 0) return 'nginx'
  if (existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx'
  throw new Error('nginx is not installed (Debian: apt-get install nginx-light)')
}

export interface Nginx {
  baseUrl: string
  port: number
  /** The master process. */
  pid: number
  dir: string
  /** The access log's lines so far (`upstreams` format: status, upstream address and status). */
  accessLog: () => string[]
  errorLog: () => string
  /** SIGTERM (nginx's fast shutdown), SIGKILL to its process group if it is still there after `timeoutMs`. */
  stop: (timeoutMs?: number) => Promise<Exit>
  running: () => boolean
  /** Deletes its folder (config and logs). */
  remove: () => void
}

/**
 * Runs the repository's nginx config in front of `upstreams` (`host:port`, two of them; the same
 * one twice is one host) on a free port: the rendered config, pid file and logs under
 * `.data/nginx-<id>/`. nginx runs in the foreground as a child leading its own process group.
 * Resolves once a GET /health through it is answered 200. The caller stops it (`stop`) and
 * removes its folder (`remove`); `startNginx` does both when a test ends.
 */
export async function runNginx(upstreams: [string, string], { accessLog = true }: { accessLog?: boolean } = {}): Promise<Nginx> {
  const dir = resolve('.data', `nginx-${randomBytes(4).toString('hex')}`)
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const conf = resolve(dir, 'nginx.conf')
  writeFileSync(
    conf,
    renderNginxConfig({
      NGINX_PORT: `127.0.0.1:${port}`,
      NGINX_ERROR_LOG: resolve(dir, 'error.log'),
      NGINX_ACCESS_LOG: accessLog ? `${resolve(dir, 'access.log')} upstreams` : 'off',
      SEATRUSH_APP: upstreams[0],
      SEATRUSH_APP_2: upstreams[1],
    }),
  )
  const args = ['-p', `${dir}/`, '-e', resolve(dir, 'error.log'), '-c', conf, '-g', `daemon off; pid ${resolve(dir, 'nginx.pid')};`]
  const child = spawn(nginxBinary(), args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
  const pid = child.pid
  if (pid === undefined) throw new Error('nginx did not start')
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  let exit: Exit | undefined
  child.on('exit', (code, signal) => (exit = { code, signal }))

  const readLog = (name: string) => (existsSync(resolve(dir, name)) ? readFileSync(resolve(dir, name), 'utf8') : '')
  const errorLog = () => stderr + readLog('error.log')
  const stop = async (timeoutMs = 10_000): Promise<Exit> => {
    if (!exit) process.kill(pid, 'SIGTERM')
    try {
      return await waitFor('nginx to exit', () => exit, { timeoutMs, intervalMs: 20 })
    } finally {
      // Its workers are in its process group; none may outlive a master that was killed.
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {}
    }
  }
  const nginx: Nginx = {
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    pid,
    dir,
    accessLog: () => readLog('access.log').split('\n').filter(Boolean),
    errorLog,
    stop,
    running: () => !exit && isAlive(pid),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
  try {
    await waitFor(
      `nginx on ${nginx.baseUrl} to answer GET /health with 200`,
      async () => {
        if (exit) throw new Error(`nginx exited (${JSON.stringify(exit)}):\n${errorLog()}`)
        return (await send(nginx.baseUrl, 'GET', '/health', { timeoutMs: 2000 }).catch(() => undefined))?.status === 200
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    )
  } catch (error) {
    await stop().catch(() => {})
    throw error
  }
  return nginx
}

/** `runNginx` for a test: stopped when the test ends, its folder removed if the test passed (the logs stay for a look otherwise). */
export async function startNginx(t: Test, upstreams: [string, string]): Promise<Nginx> {
  let nginx: Nginx | undefined
  t.teardown(async () => {
    if (nginx?.running()) await nginx.stop().catch(() => {})
    if (nginx && t.passing()) nginx.remove()
  })
  nginx = await runNginx(upstreams)
  return nginx
}
