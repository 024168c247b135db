import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { Config } from '../config.js'

/** Where a development identity secret is kept when the operator configured no IDENTITY_* key. */
export const DEVELOPMENT_SECRET_FILE = resolve('.data/identity-jwt-secret')

/** Whether token mode has to make do with a development secret: no key of a real login is set. */
export function needsDevelopmentSecret(config: Config): boolean {
  return config.AUTH_MODE === 'token' && !config.IDENTITY_JWT_SECRET && !config.IDENTITY_PUBLIC_KEY && !config.IDENTITY_JWKS_URL
}

/**
 * The development identity secret: read from `.data/`, or generated there (readable by its owner
 * only) on first use, so `npm start` and `npm run token` agree without a secret in the repository.
 */
export function developmentIdentitySecret(file = DEVELOPMENT_SECRET_FILE): { secret: string; created: boolean } {
  try {
    const secret = readFileSync(file, 'utf8').trim()
    if (secret.length >= 32) return { secret, created: false }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const secret = randomBytes(32).toString('hex')
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, `${secret}\n`, { mode: 0o600 })
  return { secret, created: true }
}
