// Scenario 4 of the load-test report: an admitted user reads the seat map of one dated option,
// thinks, and holds a random seat. Users race for the same seats, so a 409 SEAT_TAKEN is an
// expected answer (it does not count in http_req_failed); seat_holds_won and seat_holds_lost
// count the outcomes. Holds are never paid here, so seats stay held for HOLD_TTL_MS.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e STAGES=10s:200,20s:899 k6/scenario-4-seats-and-hold.js
import { sleep } from 'k6';
import { ROUTES, getSeats, holdSeat, requireServer } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { waitForAdmission } from './lib/queue.js';
import { DETAIL, THINK, randomSeat, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

export const options = rampingOptions({
  scenario: 'seats_and_hold',
  defaultStages: '1s:1,1s:1',
  endpoints: [ROUTES.joinQueue, ROUTES.queueStatus, ROUTES.seats, ROUTES.hold],
  queued: true,
});

export const setup = requireServer;

export default function () {
  const userId = userOfThisVu();
  const token = waitForAdmission(userId);
  if (token !== undefined) {
    getSeats(token, DETAIL);
    sleep(THINK);
    holdSeat(token, userId, DETAIL, randomSeat());
  }
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-4-seats-and-hold');
