// End-of-test output: k6's usual text summary on stdout, and the whole summary as JSON under
// SUMMARY_DIR (k6/results by default, relative to where k6 runs), one file per run, so runs with
// different stages or server settings can be compared later.
import { textSummary } from 'https://jslib.k6.io/k6-summary/0.0.2/index.js';
import { SUMMARY_DIR } from './settings.js';

/** A handleSummary that writes `<SUMMARY_DIR>/<name>-<UTC time of the run's end>.json`. */
export function summaryFor(name) {
  return function handleSummary(data) {
    const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '');
    return {
      stdout: textSummary(data, { indent: ' ', enableColors: true }),
      [`${SUMMARY_DIR}/${name}-${stamp}.json`]: JSON.stringify(data, null, 2),
    };
  };
}
