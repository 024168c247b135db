// Scenario 3 of the load-test report: a user joins the queue, waits to be let in, then reads the
// concert's bookable dates with the queue token. The report slept a fixed 30 s and sent the bare
// user id; this polls GET /concert/wait until ACTIVE (at most WAIT_TIMEOUT seconds) and sends
// `Authorization: Bearer <token>`.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 k6/scenario-3-reservation-days.js
import { sleep } from 'k6';
import { ROUTES, getReservationDays, requireServer } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { waitForAdmission } from './lib/queue.js';
import { CONCERT, THINK, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

export const options = rampingOptions({
  scenario: 'reservation_days',
  defaultStages: '1s:2,1s:899',
  endpoints: [ROUTES.joinQueue, ROUTES.queueStatus, ROUTES.reservationDays],
  queued: true,
});

export const setup = requireServer;

export default function () {
  const token = waitForAdmission(userOfThisVu());
  if (token !== undefined) getReservationDays(token, CONCERT);
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-3-reservation-days');
