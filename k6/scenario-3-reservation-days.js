// Scenario 3 of the load-test report: a user joins the queue, waits to be let in, reads the
// concert's bookable dates with the queue token, and leaves. The report slept a fixed 30 s and
// sent the bare user id; this polls GET /concert/wait as etaSeconds suggests until ACTIVE (at
// most WAIT_TIMEOUT seconds), sends `Authorization: Bearer <queue token>`, and gives the slot
// back when done, so the server's MAX_ACTIVE slots serve more users than it has slots.
//
//   k6 run -e IDENTITY_JWT_SECRET=... -e STAGES=10s:50,40s:150 k6/scenario-3-reservation-days.js
import { sleep } from 'k6';
import { ROUTES, getReservationDays, leaveQueue, prepare } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { waitForAdmission } from './lib/queue.js';
import { CONCERT, THINK, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

export const options = rampingOptions({
  scenario: 'reservation_days',
  defaultStages: '1s:2,1s:899',
  endpoints: [ROUTES.joinQueue, ROUTES.queueStatus, ROUTES.reservationDays, ROUTES.leaveQueue],
  queued: true,
});

export function setup() {
  prepare();
}

export default function () {
  const token = waitForAdmission(userOfThisVu());
  if (token !== undefined) {
    getReservationDays(token, CONCERT);
    leaveQueue(token);
  }
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-3-reservation-days');
