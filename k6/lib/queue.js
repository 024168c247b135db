// The waiting-queue flow a real client follows before it may book: join, keep the token, poll
// until the queue lets the user in or WAIT_TIMEOUT passes.
import { sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { joinQueue, queueStatus } from './api.js';
import { POLL, WAIT_TIMEOUT } from './settings.js';

const admitted = new Rate('queue_admitted');
const waited = new Trend('queue_wait', true);

/**
 * Joins the queue as `userId` and polls GET /concert/wait every POLL seconds until ACTIVE, for at
 * most WAIT_TIMEOUT seconds. Returns the token for the protected routes, or undefined when the
 * user was not let in.
 */
export function waitForAdmission(userId) {
  const started = Date.now();
  const left = () => WAIT_TIMEOUT - (Date.now() - started) / 1000;
  let ticket = joinQueue(userId);
  // A shed (503) or rate-limited (429) join asks the client to come back later: a real client
  // does, within its patience.
  while ((ticket.status === 503 || ticket.status === 429) && left() > 0) {
    sleep(Math.min(POLL, left()));
    ticket = joinQueue(userId);
  }
  let standing = ticket.body;
  while (ticket.ok && standing.status !== 'ACTIVE' && left() > 0) {
    sleep(Math.min(POLL, left()));
    const poll = queueStatus(ticket.body.token, userId);
    // 401: the token is refused; 404: the user fell out of the queue. Polling cannot fix either.
    if (poll.status === 401 || poll.status === 404) break;
    // Anything else that failed (a shed 503) is worth another poll; keep the last standing.
    if (poll.ok) standing = poll.body;
  }
  const active = ticket.ok && standing.status === 'ACTIVE';
  admitted.add(active);
  if (active) waited.add(Date.now() - started);
  return active ? ticket.body.token : undefined;
}
