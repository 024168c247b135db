// Scenario 1 of the load-test report: a user reads the point balance, charges 1000 points, and
// thinks. No queue: this is the everyday traffic before a ticket rush. Both calls act for the
// user, so they carry the user's identity token (see lib/identity.js).
//
//   k6 run -e IDENTITY_JWT_SECRET=... -e STAGES=10s:100,30s:500 k6/scenario-1-points.js
import { sleep } from 'k6';
import { ROUTES, chargePoint, getPoint, prepare } from './lib/api.js';
import { rampingOptions } from './lib/options.js';
import { THINK, userOfThisVu } from './lib/settings.js';
import { summaryFor } from './lib/summary.js';

const CHARGE = 1000;

export const options = rampingOptions({
  scenario: 'points',
  // The report's second stage was { duration: '1', target: 1 }: k6 reads a bare number as
  // milliseconds, so it lasted 1 ms; '1s' is what it meant.
  defaultStages: '1s:1,1s:1',
  endpoints: [ROUTES.point, ROUTES.charge],
});

export function setup() {
  prepare();
}

export default function () {
  const userId = userOfThisVu();
  const balance = getPoint(userId);
  chargePoint(userId, CHARGE, balance.ok ? balance.body.point : undefined);
  sleep(THINK);
}

export const handleSummary = summaryFor('scenario-1-points');
