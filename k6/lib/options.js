// The k6 options every scenario shares: one ramping-vus scenario driven by -e STAGES, and the
// thresholds a run passes or fails on.
import { ABORT_ON_FAIL, P99_MS, THINK, WAIT_TIMEOUT, stages } from './settings.js';

// k6 summarizes a tag's values only through a threshold on them: these always pass and exist to
// count each endpoint's answers by status (the summary leaves them out of its threshold list).
// 0 is no answer at all (refused, reset, timed out); any other status shows as "other".
export const TALLY = 'count>=0';
export const STATUSES = [0, 200, 204, 400, 401, 402, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 504];

// With ABORT_ON_FAIL the failure thresholds end the run (after 10 s, so a few early errors on
// a handful of requests do not), like the report's fail-fast scripts intended: their fail() only
// ended the one iteration, and the VU went on with the next.
const failure = (expression) =>
  ABORT_ON_FAIL ? { threshold: expression, abortOnFail: true, delayAbortEval: '10s' } : expression;

/**
 * @param {object} spec
 * @param {string} spec.scenario       k6 scenario name (shows up as the `scenario` tag)
 * @param {string} spec.defaultStages  the report's stages for this scenario, as -e STAGES takes them
 * @param {string[]} spec.endpoints    request names (ROUTES values) this scenario sends
 * @param {boolean} [spec.queued]      whether iterations wait in the queue before booking
 */
export function rampingOptions({ scenario, defaultStages, endpoints, queued = false }) {
  // An iteration that waits in the queue runs for up to WAIT_TIMEOUT plus its think times: give
  // it that long to finish when the last stage ends, instead of cutting it off mid-booking.
  const grace = queued ? `${Math.ceil(WAIT_TIMEOUT + 3 * THINK) + 30}s` : '30s';
  const thresholds = {
    http_req_failed: [failure('rate<0.01')],
    http_req_duration: [`p(99)<${P99_MS}`],
    checks: [failure('rate>0.99')],
  };
  for (const name of endpoints) {
    thresholds[`http_req_duration{name:${name}}`] = [`p(99)<${P99_MS}`];
    for (const status of STATUSES) thresholds[`http_reqs{name:${name},status:${status}}`] = [TALLY];
  }
  // Nearly every VU must get in: if not, the server's admission settings are too slow for the
  // ramp (see k6/README.md), and the booking numbers measure only the few who got through.
  if (queued) thresholds.queue_admitted = [failure('rate>0.95')];

  return {
    scenarios: {
      [scenario]: {
        executor: 'ramping-vus',
        startVUs: 0,
        stages: stages(defaultStages),
        gracefulRampDown: grace,
        gracefulStop: grace,
      },
    },
    thresholds,
    // count: each endpoint's requests, for the summary's table.
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  };
}
