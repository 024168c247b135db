// Scenario 5 of the load-test report: an admitted user holds a random seat and pays for it with
// points, which confirms the reservation. Only a won hold is paid for; a lost race or a refused
// hold (409) and too few points (402) are expected answers. Paying frees the user's queue slot
// only when no other hold of the user is live, so the user leaves the queue when done either way.
//
// -e PAY_SEAT=3 reproduces the report's script, which paid for seat 3 whatever seat it held:
// then every user pays, and all but the holder of seat 3 must be refused with a clean 409 while
// the seat is sold at most once. Those 409s are expected too and do not fail the run.
//
//   k6 run -e IDENTITY_JWT_SECRET=... -e STAGES=10s:50,40s:150 k6/scenario-5-hold-and-pay.js
import { sleep } from 'k6';
import { ROUTES, holdSeat, leaveQueue, pay, prepare } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { waitForAdmission } from './lib/queue.js';
import { DETAIL, PAY_SEAT, THINK, randomSeat, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

export const options = rampingOptions({
  scenario: 'hold_and_pay',
  defaultStages: '2s:1,2s:1',
  endpoints: [ROUTES.joinQueue, ROUTES.queueStatus, ROUTES.hold, ROUTES.pay, ROUTES.leaveQueue],
  queued: true,
});

export function setup() {
  prepare({ books: true });
}

export default function () {
  const userId = userOfThisVu();
  const token = waitForAdmission(userId);
  if (token !== undefined) {
    const seatNo = randomSeat();
    const hold = holdSeat(token, userId, DETAIL, seatNo);
    sleep(THINK);
    if (PAY_SEAT > 0) pay(token, userId, DETAIL, PAY_SEAT, { mayNotHold: true });
    else if (hold.status === 200) pay(token, userId, DETAIL, seatNo);
    leaveQueue(token);
  }
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-5-hold-and-pay');
