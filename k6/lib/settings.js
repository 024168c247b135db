// Settings every scenario reads from `k6 run -e NAME=value`. They are checked once, in the init
// context, so a typo stops the run before the first request instead of quietly skewing it.
import exec from 'k6/execution';

function given(name) {
  const value = __ENV[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function number(name, fallback, { integer = false, min = 0 } = {}) {
  const value = given(name);
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < min || (integer && !Number.isInteger(parsed))) {
    throw new Error(`-e ${name}=${value}: expected ${integer ? 'an integer' : 'a number'} >= ${min}`);
  }
  return parsed;
}

function flag(name) {
  const value = given(name);
  if (value === undefined) return false;
  if (!['true', 'false', '1', '0'].includes(value)) throw new Error(`-e ${name}=${value}: expected true or false`);
  return value === 'true' || value === '1';
}

function oneOf(name, values, fallback) {
  const value = given(name);
  if (value === undefined) return fallback;
  if (!values.includes(value)) throw new Error(`-e ${name}=${value}: expected one of ${values.join(', ')}`);
  return value;
}

export const BASE_URL = (given('BASE_URL') || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const THINK = number('THINK', 1);
export const USERS = number('USERS', 899, { integer: true, min: 1 });
export const SEATS = number('SEATS', 50, { integer: true, min: 1 });
export const CONCERT = number('CONCERT', 1, { integer: true, min: 1 });
export const DETAIL = number('DETAIL', 1, { integer: true, min: 1 });
// A default server admits ADMIT_BATCH (10) users a second: the report's 899 VUs of scenario 3,
// all joining in its first two seconds, need about 90 s to be let in, and a rush's buyers wait that long.
export const WAIT_TIMEOUT = number('WAIT_TIMEOUT', 120);
export const POLL = number('POLL', 1, { min: 0.05 });
// How long a VU keeps coming back to a call answered 503 or 429 with Retry-After before it gives up.
export const RETRY_PATIENCE = number('RETRY_PATIENCE', 5);
// 0 pays for the seat the VU holds; a seat number pays for that seat whatever was held.
export const PAY_SEAT = number('PAY_SEAT', 0, { integer: true });
export const P99_MS = number('P99_MS', 1000, { min: 1 });
// Stop the whole run once failures cross the thresholds, as the report's fail-fast variants meant to.
export const ABORT_ON_FAIL = flag('ABORT_ON_FAIL');
// token (the server's default): calls acting for a user carry that user's identity token, minted
// here with the server's IDENTITY_JWT_SECRET; user-id: the report's trust model, no identity sent.
export const AUTH_MODE = oneOf('AUTH_MODE', ['token', 'user-id'], 'token');
// Taken as given, spaces and all: the server signs with the exact bytes of its setting.
export const IDENTITY_JWT_SECRET = __ENV.IDENTITY_JWT_SECRET || undefined;
export const SUMMARY_DIR = (given('SUMMARY_DIR') || 'k6/results').replace(/\/+$/, '');

// One or more Go-style durations, as k6 itself accepts them: 500ms, 20s, 1m30s.
const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;

/** Parses "5s:50,20s:899" into k6 stages: [{ duration: '5s', target: 50 }, ...]. */
export function parseStages(spec) {
  return spec.split(',').map((stage) => {
    const parts = stage.trim().split(':');
    if (parts.length !== 2 || !DURATION.test(parts[0]) || !/^\d+$/.test(parts[1])) {
      throw new Error(`-e STAGES: "${stage}" is not duration:target, e.g. STAGES=5s:50,20s:899`);
    }
    return { duration: parts[0], target: Number(parts[1]) };
  });
}

/** The stages from -e STAGES, or the scenario's own default written the same way. */
export function stages(defaultSpec) {
  return parseStages(given('STAGES') || defaultSpec);
}

/**
 * Each VU books as one user, ids 1..USERS, so two VUs never share a queue token or a seat hold
 * unless there are more VUs than users.
 */
export function userOfThisVu() {
  return ((exec.vu.idInTest - 1) % USERS) + 1;
}

export function randomSeat() {
  return 1 + Math.floor(Math.random() * SEATS);
}
