import { createHmac } from 'node:crypto'

/** A JWT part: JSON, base64url-encoded. */
export const jwtPart = (part: object) => Buffer.from(JSON.stringify(part)).toString('base64url')

/**
 * Signs `claims` as the app signs queue tokens (HS256, `sub` the user id as a string, with the
 * config's TOKEN_SECRET), or with another secret or header, to make tokens the server must refuse.
 */
export function signJwt(claims: object, secret: string, header: object = { alg: 'HS256', typ: 'JWT' }): string {
  const unsigned = `${jwtPart(header)}.${jwtPart(claims)}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}
