// Identity tokens as the platform's login issues them (see src/plugins/identity.ts): HS256 JWTs
// whose `sub` is the user id, signed with the server's IDENTITY_JWT_SECRET. The scenarios act as
// many users, so they mint each user's token themselves instead of logging in.
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { AUTH_MODE, IDENTITY_JWT_SECRET } from './settings.js';

const TTL_S = 3600;
// A token this close to its expiry is minted anew, so a long run never sends an expired one.
const RENEW_BEFORE_S = 60;

const base64url = (data) => encoding.b64encode(data, 'rawurl');
const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

/** Minted tokens of this VU, by user id: { token, exp }. */
const minted = new Map();

function mint(userId, now) {
  const exp = now + TTL_S;
  const unsigned = `${HEADER}.${base64url(JSON.stringify({ sub: String(userId), iat: now, exp }))}`;
  const signature = base64url(crypto.hmac('sha256', IDENTITY_JWT_SECRET, unsigned, 'binary'));
  return { token: `${unsigned}.${signature}`, exp };
}

/**
 * The identity token to send for `userId`, or undefined in AUTH_MODE=user-id (and without a
 * secret, which `identityProblem` stops in setup).
 */
export function identityOf(userId) {
  if (AUTH_MODE === 'user-id' || IDENTITY_JWT_SECRET === undefined) return undefined;
  const now = Math.floor(Date.now() / 1000);
  let entry = minted.get(userId);
  if (entry === undefined || entry.exp - now < RENEW_BEFORE_S) {
    entry = mint(userId, now);
    minted.set(userId, entry);
  }
  return entry.token;
}

/** Why this run cannot act as its users, or undefined when it can. */
export function identityProblem() {
  if (AUTH_MODE === 'user-id' || IDENTITY_JWT_SECRET !== undefined) return undefined;
  return "this scenario acts as users: pass the server's IDENTITY_JWT_SECRET as -e IDENTITY_JWT_SECRET=... to mint their " +
    'identity tokens, or run the server with AUTH_MODE=user-id and pass -e AUTH_MODE=user-id';
}
