// One function per seatrush endpoint the scenarios call. Each sends the request with the body
// the report's scripts send, checks the status and the shape of the answer, and returns
// { ok, status, body, res }: ok is true when every check passed.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { identityOf, identityProblem } from './identity.js';
import { AUTH_MODE, BASE_URL, CONCERT, DETAIL, POLL, RETRY_PATIENCE } from './settings.js';

// Request names: the `name` tag of every request, so /point/1 and /point/2 are one series and
// the summary can show a p99 per endpoint.
export const ROUTES = {
  health: 'GET /health',
  point: 'GET /point/:userId',
  charge: 'PATCH /point',
  concert: 'GET /concert/:concertId',
  concertOptions: 'GET /concerts/:concertId',
  joinQueue: 'POST /concert/wait',
  queueStatus: 'GET /concert/wait',
  leaveQueue: 'DELETE /concert/wait',
  reservationDays: 'GET /concert/reservation/days/:concertId',
  seats: 'GET /concert/seats/:concertDetailId',
  hold: 'PATCH /concert/seat',
  pay: 'POST /concert/reservation/days',
};

// Answers the API promises under contention are not failures: a hold refused because the seat is
// taken, the user holds MAX_HOLDS_PER_USER seats or its own hold of that seat just lapsed (409),
// too few points (402) and, only when the run pays for a seat it may not hold, "not your hold"
// (409). Everything else outside 2xx still counts in http_req_failed. They are set per request,
// not with http.setResponseCallback, which would also hide a 409 on PATCH /point (balance cap).
const HOLD_ANSWERS = http.expectedStatuses({ min: 200, max: 299 }, 409);
const PAYMENT_ANSWERS = http.expectedStatuses({ min: 200, max: 299 }, 402);
const BLIND_PAYMENT_ANSWERS = http.expectedStatuses({ min: 200, max: 299 }, 402, 409);
const HOLD_REFUSALS = ['SEAT_TAKEN', 'HOLD_LIMIT_REACHED', 'HOLD_COOLDOWN'];

// A shed request (503 + Retry-After from a worker under pressure, or a backing service down) still
// counts in http_req_failed; this rate keeps it apart, so "the server said later" is not mistaken
// for "the server broke" when comparing SHED_LOAD=true with SHED_LOAD=false.
const shed = new Rate('requests_shed');
const holdsWon = new Counter('seat_holds_won');
const holdsLost = new Counter('seat_holds_lost');
const holdsRefused = new Counter('seat_holds_refused');
const paymentsMade = new Counter('payments_made');
const paymentsRefused = new Counter('payments_refused');

/** The seconds a 503 or 429 asks the client to wait, or undefined when it names none. */
export function retryAfter(res) {
  const seconds = Number(res.headers['Retry-After']);
  return (res.status === 503 || res.status === 429) && Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

/**
 * Sends one call the way a client that honours Retry-After does: a 503 or 429 that names a wait
 * is sent again after it, for as long as the waits add up to at most `patience` seconds. Every
 * attempt is a request of its own in the metrics.
 *
 * @param {string} method
 * @param {string} path
 * @param {string} route  one of ROUTES, the request's `name` tag
 * @param {{ body?: object, credential?: string, expected?: import('k6/http').Params['responseCallback'],
 *   idempotencyKey?: string, patience?: number }} [extra]
 */
function send(method, path, route, { body, credential, expected, idempotencyKey, patience = RETRY_PATIENCE } = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (credential !== undefined) headers.Authorization = `Bearer ${credential}`;
  if (idempotencyKey !== undefined) headers['Idempotency-Key'] = idempotencyKey;
  /** @type {import('k6/http').Params} */
  const params = { headers, tags: { name: route } };
  if (expected !== undefined) params.responseCallback = expected;
  const payload = body === undefined ? null : JSON.stringify(body);
  let waited = 0;
  for (;;) {
    const res = http.request(method, `${BASE_URL}${path}`, payload, params);
    shed.add(res.status === 503, { name: route });
    const asked = retryAfter(res);
    // At least POLL, so a Retry-After of 0 cannot make a busy loop.
    const wait = asked === undefined ? undefined : Math.max(asked, POLL);
    if (wait === undefined || waited + wait > patience) return res;
    sleep(wait);
    waited += wait;
  }
}

/** A key no other call of any run shares, so a retry (and only a retry) gets the first answer. */
function freshKey() {
  return `k6-${exec.vu.idInTest}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** The body as JSON, or undefined when there is none (a reset connection, a proxy's error page). */
function json(res) {
  try {
    return res.json();
  } catch (error) {
    return undefined;
  }
}

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
const isInt = Number.isInteger;
const QUEUE_STATUSES = ['PREQUEUE', 'WAITING', 'ACTIVE'];
const SEAT_STATUSES = ['AVAILABLE', 'HELD', 'SOLD'];

/** Every error the API sends has this shape; `code` is the stable part to branch on. */
function isError(body, statusCode, codes) {
  return isObject(body) && body.statusCode === statusCode && typeof body.code === 'string' &&
    (codes === undefined || [].concat(codes).includes(body.code));
}

function isConcertOption(option) {
  return isObject(option) && isInt(option.concertDetailId) && typeof option.date === 'string' &&
    isInt(option.price) && isInt(option.totalSeats) && isInt(option.availableSeats);
}

/** A queue standing: the join's answer and the poll's share these fields. */
function isStanding(body, concertId) {
  return isObject(body) && body.concertId === concertId && QUEUE_STATUSES.includes(body.status) &&
    isInt(body.position) && isInt(body.etaSeconds) && (body.status !== 'PREQUEUE' || typeof body.opensAt === 'string');
}

function checked(res, body, checks) {
  return { ok: check(res, checks), status: res.status, body, res };
}

/**
 * The scenarios' setup: stops the run before the ramp, with one message saying what to change,
 * when nothing answers at BASE_URL, when it cannot act as its users (no secret, a secret that is
 * not the server's, a server that wants identity in AUTH_MODE=user-id), or when DETAIL is not one
 * of CONCERT's dated options (its calls would all be 403 WRONG_CONCERT).
 */
export function prepare({ books = false } = {}) {
  const problem = identityProblem();
  if (problem !== undefined) exec.test.abort(problem);
  const health = send('GET', '/health', ROUTES.health);
  if (health.status !== 200) {
    exec.test.abort(`GET ${BASE_URL}/health answered ${health.status || health.error}: start the server (npm start) or pass -e BASE_URL=...`);
  }
  const probe = send('GET', '/point/1', ROUTES.point, { credential: identityOf(1) });
  if (probe.status === 401 || probe.status === 403) {
    const refusal = json(probe);
    const code = isObject(refusal) ? refusal.code : probe.status;
    exec.test.abort(
      AUTH_MODE === 'user-id'
        ? `the server wants identity tokens (${code}): it runs AUTH_MODE=token, so pass -e IDENTITY_JWT_SECRET=<its secret> instead of -e AUTH_MODE=user-id`
        : `the server refused the identity token minted with -e IDENTITY_JWT_SECRET (${code}): pass the server's IDENTITY_JWT_SECRET`,
    );
  }
  if (books) {
    const options = json(send('GET', `/concerts/${CONCERT}`, ROUTES.concertOptions));
    if (!Array.isArray(options) || !options.some((option) => isObject(option) && option.concertDetailId === DETAIL)) {
      exec.test.abort(`-e DETAIL=${DETAIL} is not a dated option of concert ${CONCERT} (GET /concerts/${CONCERT}): pass a DETAIL of CONCERT`);
    }
  }
}

export function getPoint(userId) {
  const res = send('GET', `/point/${userId}`, ROUTES.point, { credential: identityOf(userId) });
  const body = json(res);
  return checked(res, body, {
    'point: 200 {userId, point}': (r) =>
      r.status === 200 && isObject(body) && body.userId === userId && isInt(body.point),
  });
}

/** `before` is the balance read just earlier, or undefined when that read failed. */
export function chargePoint(userId, charge, before) {
  const res = send('PATCH', '/point', ROUTES.charge, {
    body: { userId, charge, '@class': 'pointReq' },
    credential: identityOf(userId),
    idempotencyKey: freshKey(),
  });
  const body = json(res);
  const checks = {
    'charge: 200 {userId, point}': (r) =>
      r.status === 200 && isObject(body) && body.userId === userId && isInt(body.point),
  };
  // Other VUs sharing this user can only add to the balance in this scenario, never take away.
  // Only a charge that went through says anything about it; a failed one fails the check above.
  if (before !== undefined && res.status === 200) {
    checks['charge: balance grew by at least the charge'] = () => isObject(body) && body.point >= before + charge;
  }
  return checked(res, body, checks);
}

export function getConcert(concertId) {
  const res = send('GET', `/concert/${concertId}`, ROUTES.concert);
  const body = json(res);
  return checked(res, body, {
    'concert: 200 {concertId, title, artist, venue}': (r) =>
      r.status === 200 && isObject(body) && body.concertId === concertId &&
      typeof body.title === 'string' && typeof body.artist === 'string' && typeof body.venue === 'string',
  });
}

export function getConcertOptions(concertId) {
  const res = send('GET', `/concerts/${concertId}`, ROUTES.concertOptions);
  const body = json(res);
  return checked(res, body, {
    'concert options: 200 [{concertDetailId, date, price, totalSeats, availableSeats}]': (r) =>
      r.status === 200 && Array.isArray(body) && body.length > 0 && body.every(isConcertOption),
  });
}

/**
 * Joins concert `concertId`'s queue as `userId`; a 503 or 429 is tried again after its
 * Retry-After within `patience` seconds. A 200 answers the queue token, bound to the user and
 * the concert, and where the user stands.
 */
export function joinQueue(userId, concertId, { patience } = {}) {
  const res = send('POST', '/concert/wait', ROUTES.joinQueue, {
    body: { userId, concertId, '@class': 'queueReq' },
    credential: identityOf(userId),
    patience,
  });
  const body = json(res);
  return checked(res, body, {
    'join queue: 200 {token, concertId, status, position, etaSeconds}': (r) =>
      r.status === 200 && isStanding(body, concertId) && typeof body.token === 'string' && body.token.length > 0,
  });
}

/** One poll of the queue, the waiter's heartbeat; the polling loop, not this, waits out a 503. */
export function queueStatus(token, userId, concertId) {
  const res = send('GET', '/concert/wait', ROUTES.queueStatus, { credential: token, patience: 0 });
  const body = json(res);
  return checked(res, body, {
    'queue status: 200 {userId, concertId, status, position, etaSeconds}': (r) =>
      r.status === 200 && isStanding(body, concertId) && body.userId === userId,
  });
}

/** Gives the queue slot (or the place in line) back, as a booking page does when it is closed. */
export function leaveQueue(token) {
  const res = send('DELETE', '/concert/wait', ROUTES.leaveQueue, { credential: token });
  return checked(res, undefined, { 'leave queue: 204': (r) => r.status === 204 });
}

export function getReservationDays(token, concertId) {
  const res = send('GET', `/concert/reservation/days/${concertId}`, ROUTES.reservationDays, { credential: token });
  const body = json(res);
  return checked(res, body, {
    'reservation days: 200 [{concertDetailId, date, price, totalSeats, availableSeats}]': (r) =>
      r.status === 200 && Array.isArray(body) && body.every(isConcertOption),
  });
}

export function getSeats(token, concertDetailId) {
  const res = send('GET', `/concert/seats/${concertDetailId}`, ROUTES.seats, { credential: token });
  const body = json(res);
  return checked(res, body, {
    'seats: 200 [{seatNo, status}]': (r) =>
      r.status === 200 && Array.isArray(body) && body.length > 0 &&
      body.every((seat) => isObject(seat) && isInt(seat.seatNo) && SEAT_STATUSES.includes(seat.status)),
  });
}

/**
 * 200 holds the seat for this user. A clean 409 refusal is an expected answer: SEAT_TAKEN (another
 * user got there first), HOLD_LIMIT_REACHED (this user holds MAX_HOLDS_PER_USER seats of the
 * concert) or HOLD_COOLDOWN (this user's own hold of the seat just lapsed).
 */
export function holdSeat(token, userId, concertDetailId, seatNo) {
  const res = send('PATCH', '/concert/seat', ROUTES.hold, {
    credential: token,
    body: { '@class': 'concertSeat', userId, concertDetailId, seatNo },
    expected: HOLD_ANSWERS,
  });
  const body = json(res);
  if (res.status === 200) holdsWon.add(1);
  if (isError(body, 409, 'SEAT_TAKEN')) holdsLost.add(1);
  if (isError(body, 409, ['HOLD_LIMIT_REACHED', 'HOLD_COOLDOWN'])) holdsRefused.add(1);
  return checked(res, body, {
    'hold: 200 {reservationId, seatNo, heldUntil, price} or 409 SEAT_TAKEN, HOLD_LIMIT_REACHED, HOLD_COOLDOWN': (r) =>
      (r.status === 200 && isObject(body) && body.reservationId !== undefined &&
        body.concertDetailId === concertDetailId && body.seatNo === seatNo &&
        typeof body.heldUntil === 'string' && isInt(body.price)) ||
      (r.status === 409 && isError(body, 409, HOLD_REFUSALS)),
  });
}

/**
 * Pays for a seat, with an Idempotency-Key so that a retry after a 503 cannot pay twice. Paying
 * for the seat this user holds succeeds unless points run short (402); with `mayNotHold` the seat
 * may be someone else's, so a clean 409 is a correct answer too.
 */
export function pay(token, userId, concertDetailId, seatNo, { mayNotHold = false } = {}) {
  const res = send('POST', '/concert/reservation/days', ROUTES.pay, {
    credential: token,
    body: { '@class': 'concertSeat', userId, concertDetailId, seatNo },
    expected: mayNotHold ? BLIND_PAYMENT_ANSWERS : PAYMENT_ANSWERS,
    idempotencyKey: freshKey(),
  });
  const body = json(res);
  if (res.status === 200) paymentsMade.add(1);
  if (res.status === 402 || res.status === 409) paymentsRefused.add(1);
  return checked(res, body, {
    'pay: 200 {reservationId, paymentId, amount, point} or a clean refusal': (r) =>
      (r.status === 200 && isObject(body) && body.reservationId !== undefined && body.paymentId !== undefined &&
        isInt(body.amount) && isInt(body.point) && body.point >= 0) ||
      (r.status === 402 && isError(body, 402, 'INSUFFICIENT_POINTS')) ||
      (mayNotHold && r.status === 409 && isError(body, 409)),
  });
}
