/**
 * `npm run token -- <userId> [ttlSeconds]`: prints a development identity token for a user, as the
 * platform's login would issue it (HS256, `sub` the user id), signed with IDENTITY_JWT_SECRET or
 * the development secret `npm start` generated. Send it as `Authorization: Bearer <token>`.
 */
import { config as loadDotenv } from 'dotenv'
import { createSigner } from 'fast-jwt'
import { loadConfig } from '../src/config.js'
import { DEVELOPMENT_SECRET_FILE, developmentIdentitySecret, needsDevelopmentSecret } from '../src/runtime/identity-secret.js'

loadDotenv({ quiet: true })
const config = loadConfig()
const [userArg, ttlArg = '3600'] = process.argv.slice(2)
if (!userArg || !/^[1-9][0-9]{0,9}$/.test(userArg) || !/^[1-9][0-9]*$/.test(ttlArg)) {
  console.error('usage: npm run token -- <userId> [ttlSeconds]')
  process.exit(2)
}
if (config.AUTH_MODE === 'user-id') {
  console.error('AUTH_MODE=user-id: user calls need no identity token (booking calls take a bare user id)')
  process.exit(2)
}
let secret = config.IDENTITY_JWT_SECRET
if (!secret) {
  if (!needsDevelopmentSecret(config)) {
    console.error('identity tokens are verified with IDENTITY_PUBLIC_KEY or IDENTITY_JWKS_URL: get one from that login')
    process.exit(2)
  }
  const development = developmentIdentitySecret()
  secret = development.secret
  if (development.created) console.error(`generated a development identity secret in ${DEVELOPMENT_SECRET_FILE}; restart a running server`)
}
const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: Number(ttlArg) * 1000 })
console.log(sign({ sub: userArg }))
