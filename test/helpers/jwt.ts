import { createHmac, sign, type KeyObject } from 'node:crypto'

/** A JWT part: JSON, base64url-encoded. */
export const jwtPart = (part: object) => Buffer.from(JSON.stringify(part)).toString('base64url')

/**
 * Signs `claims` as the app signs queue tokens (HS256, `sub` the user id as a string, with the
 * config's TOKEN_SECRET), or with another secret or header, to make tokens the server must refuse.
 * With a private key instead of a secret it signs as a login with key pairs does (RS256 for an
 * RSA key, ES256 for a P-256 key; `header` should name that alg and the kid).
 */
export function signJwt(claims: object, secret: string | KeyObject, header: object = { alg: 'HS256', typ: 'JWT' }): string {
  const unsigned = `${jwtPart(header)}.${jwtPart(claims)}`
  const signature =
    typeof secret === 'string'
      ? createHmac('sha256', secret).update(unsigned).digest()
      : sign('sha256', Buffer.from(unsigned), { key: secret, dsaEncoding: 'ieee-p1363' })
  return `${unsigned}.${signature.toString('base64url')}`
}

/** The IDENTITY_JWT_SECRET of every test config: the tests play the platform's login. */
export const TEST_IDENTITY_SECRET = 'test-identity-secret-test-identity-0123'

/** An identity token for `userId` as the login issues it (HS256, `sub`, one hour), or with other claims. */
export function identityToken(userId: number, claims: object = {}, secret = TEST_IDENTITY_SECRET): string {
  const now = Math.floor(Date.now() / 1000)
  return signJwt({ sub: String(userId), iat: now, exp: now + 3600, ...claims }, secret)
}
