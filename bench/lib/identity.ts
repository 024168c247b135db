import { namedUser } from '../../test/helpers/http.js'
import { TEST_IDENTITY_SECRET, identityToken } from '../../test/helpers/jwt.js'
import type { RequestStep } from './autocannon.js'

/** The lab plays the platform's login: its servers trust the identity tokens it signs. */
export const LAB_IDENTITY = { IDENTITY_JWT_SECRET: TEST_IDENTITY_SECRET }

const tokens = new Map<number, string>()

/**
 * The step with the acting user's identity token on the calls that need one (a balance, a
 * charge, joining the queue), as the shared client sends them; a request that already carries
 * Authorization is left as it is. Tokens are signed once per user and reused.
 */
export function withIdentity(step: RequestStep): RequestStep {
  return {
    ...step,
    next: (context) => {
      const request = step.next(context)
      const userId = namedUser(request.method, request.path, request.json)
      if (userId === undefined || Object.keys(request.headers ?? {}).some((name) => name.toLowerCase() === 'authorization')) return request
      let token = tokens.get(userId)
      if (!token) tokens.set(userId, (token = identityToken(userId)))
      return { ...request, headers: { ...request.headers, authorization: `Bearer ${token}` } }
    },
  }
}
