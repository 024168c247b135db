// The waiting-queue flow a real client follows before it may book: join once, keep the token,
// poll GET /concert/wait (the waiter's heartbeat) as often as the answer's etaSeconds suggests
// until the queue lets the user in or WAIT_TIMEOUT passes.
import { sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { joinQueue, queueStatus, retryAfter } from './api.js';
import { CONCERT, POLL, WAIT_TIMEOUT } from './settings.js';

const admitted = new Rate('queue_admitted');
const waited = new Trend('queue_wait', true);

// The server drops a waiter silent for WAITING_TTL_MS (2 min by default): poll well within it,
// however far off the estimate says admission is.
const HEARTBEAT_S = 30;

/**
 * Joins CONCERT's queue as `userId` and polls until ACTIVE, for at most WAIT_TIMEOUT seconds: the
 * next poll comes after the answer's etaSeconds, at least POLL and at most HEARTBEAT_S seconds
 * later, or after the Retry-After of a shed poll. A refused join (503, 429) is tried again after
 * its Retry-After, within the same patience. Returns the queue token for the booking calls, or
 * undefined when the user was not let in.
 */
export function waitForAdmission(userId) {
  const started = Date.now();
  const left = () => WAIT_TIMEOUT - (Date.now() - started) / 1000;
  const ticket = joinQueue(userId, CONCERT, { patience: WAIT_TIMEOUT });
  let standing = ticket.ok ? ticket.body : undefined;
  let pause = ticket.ok ? standing.etaSeconds : 0;
  while (standing !== undefined && standing.status !== 'ACTIVE' && left() > 0) {
    sleep(Math.min(Math.max(pause, POLL), HEARTBEAT_S, left()));
    const poll = queueStatus(ticket.body.token, userId, CONCERT);
    if (poll.ok) {
      standing = poll.body;
      pause = standing.etaSeconds;
      continue;
    }
    // A shed poll asks to come back later; anything else (an expired token, a place lost) polling cannot fix.
    pause = retryAfter(poll.res);
    if (poll.status !== 503 || pause === undefined) break;
  }
  const active = standing !== undefined && standing.status === 'ACTIVE';
  admitted.add(active);
  if (active) waited.add(Date.now() - started);
  return active ? ticket.body.token : undefined;
}
