// One function per seatrush endpoint the scenarios call. Each sends the request with the body
// the report's scripts send, checks the status and the shape of the answer, and returns
// { ok, status, body }: ok is true when every check passed.
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { BASE_URL } from './settings.js';

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
  reservationDays: 'GET /concert/reservation/days/:concertId',
  seats: 'GET /concert/seats/:concertDetailId',
  hold: 'PATCH /concert/seat',
  pay: 'POST /concert/reservation/days',
};

// Answers the API promises under contention are not failures: losing the race for a seat (409),
// too few points (402) and, only when the run pays for a seat it may not hold, "not your hold"
// (409). Everything else outside 2xx still counts in http_req_failed. They are set per request,
// not with http.setResponseCallback, which would also hide a 409 on PATCH /point (balance cap).
const HOLD_ANSWERS = http.expectedStatuses({ min: 200, max: 299 }, 409);
const PAYMENT_ANSWERS = http.expectedStatuses({ min: 200, max: 299 }, 402);
const BLIND_PAYMENT_ANSWERS = http.expectedStatuses({ min: 200, max: 299 }, 402, 409);

// A shed request (503 + Retry-After from a worker under pressure, or a backing service down) still
// counts in http_req_failed; this rate keeps it apart, so "the server said later" is not mistaken
// for "the server broke" when comparing SHED_LOAD=true with SHED_LOAD=false.
const shed = new Rate('requests_shed');
const holdsWon = new Counter('seat_holds_won');
const holdsLost = new Counter('seat_holds_lost');
const paymentsMade = new Counter('payments_made');
const paymentsRefused = new Counter('payments_refused');

/**
 * @param {string} method
 * @param {string} path
 * @param {string} route  one of ROUTES, the request's `name` tag
 * @param {{ body?: object, token?: string, expected?: import('k6/http').Params['responseCallback'] }} [extra]
 */
function send(method, path, route, { body, token, expected } = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  /** @type {import('k6/http').Params} */
  const params = { headers, tags: { name: route } };
  if (expected !== undefined) params.responseCallback = expected;
  const res = http.request(method, `${BASE_URL}${path}`, body === undefined ? null : JSON.stringify(body), params);
  shed.add(res.status === 503, { name: route });
  return res;
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
const QUEUE_STATUSES = ['WAITING', 'ACTIVE'];
const SEAT_STATUSES = ['AVAILABLE', 'HELD', 'SOLD'];

/** Every error the API sends has this shape; `code` is the stable part to branch on. */
function isError(body, statusCode, code) {
  return isObject(body) && body.statusCode === statusCode && typeof body.code === 'string' &&
    (code === undefined || body.code === code);
}

function isConcertOption(option) {
  return isObject(option) && isInt(option.concertDetailId) && typeof option.date === 'string' &&
    isInt(option.price) && isInt(option.totalSeats) && isInt(option.availableSeats);
}

function checked(res, body, checks) {
  return { ok: check(res, checks), status: res.status, body };
}

/** Aborts the run before the ramp when nothing answers at BASE_URL, rather than failing every request. */
export function requireServer() {
  const res = send('GET', '/health', ROUTES.health);
  if (res.status !== 200) {
    exec.test.abort(
      `GET ${BASE_URL}/health answered ${res.status || res.error}: start the server (npm start) or pass -e BASE_URL=...`,
    );
  }
}

export function getPoint(userId) {
  const res = send('GET', `/point/${userId}`, ROUTES.point);
  const body = json(res);
  return checked(res, body, {
    'point: 200 {userId, point}': (r) =>
      r.status === 200 && isObject(body) && body.userId === userId && isInt(body.point),
  });
}

/** `before` is the balance read just earlier, or undefined when that read failed. */
export function chargePoint(userId, charge, before) {
  const res = send('PATCH', '/point', ROUTES.charge, { body: { userId, charge, '@class': 'pointReq' } });
  const body = json(res);
  const checks = {
    'charge: 200 {userId, point}': (r) =>
      r.status === 200 && isObject(body) && body.userId === userId && isInt(body.point),
  };
  // Other VUs sharing this user can only add to the balance in this scenario, never take away.
  if (before !== undefined) {
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

export function joinQueue(userId) {
  const res = send('POST', '/concert/wait', ROUTES.joinQueue, { body: { userId, '@class': 'queueReq' } });
  const body = json(res);
  return checked(res, body, {
    'join queue: 200 {token, status, position, etaSeconds}': (r) =>
      r.status === 200 && isObject(body) && typeof body.token === 'string' && body.token.length > 0 &&
      QUEUE_STATUSES.includes(body.status) && isInt(body.position) && typeof body.etaSeconds === 'number',
  });
}

export function queueStatus(token, userId) {
  const res = send('GET', '/concert/wait', ROUTES.queueStatus, { token });
  const body = json(res);
  return checked(res, body, {
    'queue status: 200 {userId, status, position, etaSeconds}': (r) =>
      r.status === 200 && isObject(body) && body.userId === userId &&
      QUEUE_STATUSES.includes(body.status) && isInt(body.position) && typeof body.etaSeconds === 'number',
  });
}

export function getReservationDays(token, concertId) {
  const res = send('GET', `/concert/reservation/days/${concertId}`, ROUTES.reservationDays, { token });
  const body = json(res);
  return checked(res, body, {
    'reservation days: 200 [{concertDetailId, date, price, totalSeats, availableSeats}]': (r) =>
      r.status === 200 && Array.isArray(body) && body.every(isConcertOption),
  });
}

export function getSeats(token, concertDetailId) {
  const res = send('GET', `/concert/seats/${concertDetailId}`, ROUTES.seats, { token });
  const body = json(res);
  return checked(res, body, {
    'seats: 200 [{seatNo, status}]': (r) =>
      r.status === 200 && Array.isArray(body) && body.length > 0 &&
      body.every((seat) => isObject(seat) && isInt(seat.seatNo) && SEAT_STATUSES.includes(seat.status)),
  });
}

/** 200 holds the seat for this user; 409 SEAT_TAKEN means another user got there first. */
export function holdSeat(token, userId, concertDetailId, seatNo) {
  const res = send('PATCH', '/concert/seat', ROUTES.hold, {
    token,
    body: { '@class': 'concertSeat', userId, concertDetailId, seatNo },
    expected: HOLD_ANSWERS,
  });
  const body = json(res);
  if (res.status === 200) holdsWon.add(1);
  if (res.status === 409) holdsLost.add(1);
  return checked(res, body, {
    'hold: 200 {reservationId, seatNo, heldUntil, price} or 409 SEAT_TAKEN': (r) =>
      (r.status === 200 && isObject(body) && body.reservationId !== undefined &&
        body.concertDetailId === concertDetailId && body.seatNo === seatNo &&
        typeof body.heldUntil === 'string' && isInt(body.price)) ||
      (r.status === 409 && isError(body, 409, 'SEAT_TAKEN')),
  });
}

/**
 * Pays for a seat. Paying for the seat this user holds succeeds unless points run short (402);
 * with `mayNotHold` the seat may be someone else's, so a clean 409 is a correct answer too.
 */
export function pay(token, userId, concertDetailId, seatNo, { mayNotHold = false } = {}) {
  const res = send('POST', '/concert/reservation/days', ROUTES.pay, {
    token,
    body: { '@class': 'concertSeat', userId, concertDetailId, seatNo },
    expected: mayNotHold ? BLIND_PAYMENT_ANSWERS : PAYMENT_ANSWERS,
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
