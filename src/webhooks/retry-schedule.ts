import type { AttemptRecord } from '../store/webhook-store.js';

/**
 * What follows an attempt, decided from data in one place. The first attempt is immediate; retry
 * `k` is due `scheduleMs[k-1]` after the first attempt (Standard Webhooks: 5 s, 5 min, 30 min,
 * 2 h, 5 h, 10 h, 14 h, 20 h, 24 h), so the wait after attempt `n` is the gap between the offsets
 * of attempts `n` and `n + 1`. Any 2xx ends the delivery; anything else (another status, a
 * refused connection, a timeout, a refused destination) is retried until the schedule runs out,
 * and the delivery then fails.
 *
 * @param attempt 1-based: the attempt that just ended.
 */
export function nextStep(attempt: number, statusCode: number | null, scheduleMs: readonly number[]): AttemptRecord['next'] {
  if (statusCode !== null && statusCode >= 200 && statusCode < 300) return { kind: 'delivered' };
  if (attempt > scheduleMs.length) return { kind: 'failed' };
  const offset = (n: number): number => (n <= 1 ? 0 : scheduleMs[n - 2]!);
  return { kind: 'retry', retryInMs: offset(attempt + 1) - offset(attempt) };
}

/** Attempts a delivery gets in all: the first, then one per entry of the schedule. */
export const maxAttempts = (scheduleMs: readonly number[]): number => scheduleMs.length + 1;
