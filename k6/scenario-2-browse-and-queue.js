// Scenario 2 of the load-test report: a user looks at concert 1 and its dated options, then joins
// the concert's waiting queue, and thinks. Joining is idempotent per user and concert, so repeat
// iterations of one VU keep the same place in line (a join counts as a poll); this scenario never
// waits for admission.
//
//   k6 run -e IDENTITY_JWT_SECRET=... k6/scenario-2-browse-and-queue.js
import { sleep } from 'k6';
import { ROUTES, getConcert, getConcertOptions, joinQueue, prepare } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { CONCERT, THINK, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

export const options = rampingOptions({
  scenario: 'browse_and_queue',
  defaultStages: '5s:50,20s:899',
  endpoints: [ROUTES.concert, ROUTES.concertOptions, ROUTES.joinQueue],
});

export function setup() {
  prepare();
}

export default function () {
  getConcert(CONCERT);
  getConcertOptions(CONCERT);
  joinQueue(userOfThisVu(), CONCERT);
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-2-browse-and-queue');
