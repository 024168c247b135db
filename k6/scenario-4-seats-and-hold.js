// Scenario 4 of the load-test report: an admitted user reads the seat map of one dated option,
// thinks, holds a random seat, and leaves the queue. Users race for the same seats, so a clean 409
// (SEAT_TAKEN; HOLD_LIMIT_REACHED once a user holds MAX_HOLDS_PER_USER seats of the concert;
// HOLD_COOLDOWN when its own hold of the seat just lapsed) is an expected answer that does not
// count in http_req_failed; seat_holds_won, seat_holds_lost and seat_holds_refused count the
// outcomes. Holds are never paid here, so seats stay held for HOLD_TTL_MS.
//
//   k6 run -e IDENTITY_JWT_SECRET=... -e STAGES=10s:50,40s:150 k6/scenario-4-seats-and-hold.js
import { sleep } from 'k6';
import { ROUTES, getSeats, holdSeat, leaveQueue, prepare } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { waitForAdmission } from './lib/queue.js';
import { DETAIL, THINK, randomSeat, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

export const options = rampingOptions({
  scenario: 'seats_and_hold',
  defaultStages: '1s:1,1s:1',
  endpoints: [ROUTES.joinQueue, ROUTES.queueStatus, ROUTES.seats, ROUTES.hold, ROUTES.leaveQueue],
  queued: true,
});

export function setup() {
  prepare({ books: true });
}

export default function () {
  const userId = userOfThisVu();
  const token = waitForAdmission(userId);
  if (token !== undefined) {
    getSeats(token, DETAIL);
    sleep(THINK);
    holdSeat(token, userId, DETAIL, randomSeat());
    leaveQueue(token);
  }
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-4-seats-and-hold');
