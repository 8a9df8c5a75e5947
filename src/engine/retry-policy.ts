export interface RetryPolicy {
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
}

/**
 * Delay before attempt `attempt + 1` (attempt counts from 1): exponential backoff with jitter
 * (between half and all of base·2^(attempt-1), capped), or the server's Retry-After when it asks
 * for longer. The batch deadline is enforced by the caller (expiry aborts the wait).
 */
export function retryDelayMs(policy: RetryPolicy, attempt: number, retryAfterMs: number | null, random = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 30));
  const backoff = exp / 2 + random() * (exp / 2);
  return retryAfterMs === null ? backoff : Math.max(retryAfterMs, backoff / 4);
}
