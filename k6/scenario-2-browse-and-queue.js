// Scenario 2 of the load-test report: a user looks at concert 1 and its dated options, then joins
// the waiting queue, and thinks. Joining is idempotent per user, so repeat iterations of one VU
// keep the same place in line; this scenario never waits for admission.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 k6/scenario-2-browse-and-queue.js
import { sleep } from 'k6';
import { ROUTES, getConcert, getConcertOptions, joinQueue, requireServer } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { CONCERT, THINK, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

export const options = rampingOptions({
  scenario: 'browse_and_queue',
  defaultStages: '5s:50,20s:899',
  endpoints: [ROUTES.concert, ROUTES.concertOptions, ROUTES.joinQueue],
});

export const setup = requireServer;

export default function () {
  getConcert(CONCERT);
  getConcertOptions(CONCERT);
  joinQueue(userOfThisVu());
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-2-browse-and-queue');
