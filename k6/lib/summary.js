// End-of-test output, with no module from outside the repository: a short text summary on stdout
// (per endpoint, checks, thresholds) and k6's whole summary object as JSON under SUMMARY_DIR
// (k6/results by default, relative to where k6 runs), one file per run, so runs with different
// stages or server settings can be compared later. k6 0.50+ and 1.x hand handleSummary the same
// object: metrics.<name>.values and .thresholds, root_group.checks and .groups, state.
import { ROUTES } from './api.js';
import { STATUSES, TALLY } from './options.js';
import { SUMMARY_DIR } from './settings.js';

const ms = (value) => (value === undefined ? '-' : value.toFixed(1));
const percent = (part, whole) => (whole === 0 ? '-' : `${((100 * part) / whole).toFixed(2)}%`);
const pad = (text, width) => String(text).padEnd(width);
const padLeft = (text, width) => String(text).padStart(width);
// Wide enough for the longest metric name of the scenarios (seat_holds_refused) and a gap.
const label = (text) => pad(text, 20);

/** Requests, latency and answers per `name` tag, in the order of ROUTES: the endpoints the scenario has thresholds on. */
function endpointRows(metrics) {
  const rows = [];
  for (const route of Object.values(ROUTES)) {
    const trend = metrics[`http_req_duration{name:${route}}`];
    if (trend === undefined || trend.values.count === 0) continue;
    const { values } = trend;
    const statuses = STATUSES
      .map((status) => [status, metrics[`http_reqs{name:${route},status:${status}}`]])
      .filter(([, metric]) => metric !== undefined && metric.values.count > 0)
      .map(([status, metric]) => [status, metric.values.count]);
    const other = values.count - statuses.reduce((sum, [, count]) => sum + count, 0);
    if (other > 0) statuses.push(['other', other]);
    rows.push([route, values.count, ms(values.med), ms(values['p(95)']), ms(values['p(99)']),
      statuses.map(([status, count]) => `${status}:${count}`).join(' ')]);
  }
  return rows;
}

function allChecks(group) {
  return group.checks.concat(...group.groups.map(allChecks));
}

/** The value a threshold expression such as `p(99)<1000` or `rate>0.99` is about. */
function measured(metric, expression) {
  const match = expression.match(/^\s*(avg|min|med|max|count|rate|value|p\(\d+(\.\d+)?\))\s*[<>=!]/);
  const value = match === null ? undefined : metric.values[match[1]];
  if (value === undefined) return '';
  return metric.type === 'rate' ? `${match[1]}=${(100 * value).toFixed(2)}%` : `${match[1]}=${Number(value.toFixed(2))}`;
}

function rateLine(metric, name) {
  if (metric === undefined) return undefined;
  const { passes, fails } = metric.values;
  return `${label(name)}${percent(passes, passes + fails)} (${passes} of ${passes + fails})`;
}

// k6's own metrics are summarized above; anything else is the scenario's (queue_wait, seat_holds_won...).
const BUILT_IN = /^(checks|data_(received|sent)|group_duration|http_req.*|iteration.*|vus(_max)?)$/;

function customLines(metrics) {
  return Object.keys(metrics)
    .filter((name) => !BUILT_IN.test(name) && !name.includes('{'))
    .sort()
    .map((name) => {
      const { type, values } = metrics[name];
      if (type === 'rate') return rateLine(metrics[name], name);
      if (type === 'trend') return `${label(name)}p50 ${ms(values.med)}  p95 ${ms(values['p(95)'])}  p99 ${ms(values['p(99)'])}`;
      return `${label(name)}${values.count !== undefined ? values.count : values.value}`;
    });
}

/** The text summary of one run, from the object `handleSummary` receives. */
function textSummary(name, data) {
  const { metrics } = data;
  const requests = metrics.http_reqs ? metrics.http_reqs.values : { count: 0, rate: 0 };
  const lines = [
    `${name}: ${(data.state.testRunDurationMs / 1000).toFixed(1)} s, ` +
      `${metrics.iterations ? metrics.iterations.values.count : 0} iterations, ` +
      `${requests.count} requests (${requests.rate.toFixed(1)}/s), ` +
      `up to ${metrics.vus_max ? metrics.vus_max.values.max : 0} VUs`,
    '',
  ];

  const header = ['endpoint', 'requests', 'p50 ms', 'p95 ms', 'p99 ms', 'statuses'];
  const rows = endpointRows(metrics);
  const width = Math.max(header[0].length, ...rows.map((row) => row[0].length)) + 2;
  for (const row of [header, ...rows]) {
    lines.push(pad(row[0], width) + row.slice(1, 5).map((cell) => padLeft(cell, 10)).join('') + '  ' + row[5]);
  }
  lines.push('');

  const checks = allChecks(data.root_group);
  const passed = checks.reduce((sum, c) => sum + c.passes, 0);
  const failed = checks.reduce((sum, c) => sum + c.fails, 0);
  lines.push(`${label('checks')}${passed} passed, ${failed} failed (${percent(passed, passed + failed)})`);
  for (const c of checks.filter((c) => c.fails > 0)) lines.push(`  failed ${c.fails} of ${c.passes + c.fails}: ${c.name}`);
  lines.push(rateLine(metrics.http_req_failed, 'http_req_failed'));
  lines.push(...customLines(metrics));
  lines.push('');

  const thresholds = [];
  for (const [metricName, metric] of Object.entries(metrics)) {
    for (const [expression, { ok }] of Object.entries(metric.thresholds || {})) {
      if (expression === TALLY) continue;
      thresholds.push({ ok, text: `${metricName} ${expression}`, value: measured(metric, expression) });
    }
  }
  thresholds.sort((a, b) => Number(a.ok) - Number(b.ok) || a.text.localeCompare(b.text));
  const broken = thresholds.filter((t) => !t.ok).length;
  lines.push(`${label('thresholds')}${thresholds.length - broken} passed, ${broken} failed`);
  const textWidth = Math.max(0, ...thresholds.map((t) => t.text.length)) + 2;
  for (const t of thresholds) lines.push(`  ${t.ok ? 'ok  ' : 'FAIL'}  ${pad(t.text, textWidth)}${t.value}`);
  // A rate no request fed (an aborted setup) has no line.
  return `${lines.filter((line) => line !== undefined).join('\n')}\n`;
}

/** A handleSummary that prints `textSummary` and writes `<SUMMARY_DIR>/<name>-<UTC time of the run's end>.json`. */
export function summaryFor(name) {
  return function handleSummary(data) {
    const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '');
    return {
      stdout: textSummary(name, data),
      [`${SUMMARY_DIR}/${name}-${stamp}.json`]: JSON.stringify(data, null, 2),
    };
  };
}
