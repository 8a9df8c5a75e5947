import type { ThroughputTracker } from '../analytics/index.js';
import { type BatchRecord, finishedAt, nowSeconds } from '../domain/index.js';

/**
 * When a running batch will be done at its current rate, and whether that is past its deadline
 * (`expires_at`): BESH's extra fields `expected_completion_at` and `deadline_at_risk` (the SDKs
 * ignore them). Unknown (null, not at risk) until the rate has been measured.
 */
export function deadlineView(b: BatchRecord, rates: ThroughputTracker): { expected_completion_at: number | null; deadline_at_risk: boolean } {
  if (finishedAt(b) !== null || b.status === 'validating') return { expected_completion_at: null, deadline_at_risk: false };
  const c = b.requestCounts;
  const { etaSeconds } = rates.rate(b.id, c.completed + c.failed, c.total);
  if (etaSeconds === null) return { expected_completion_at: null, deadline_at_risk: false };
  const at = nowSeconds() + etaSeconds;
  return { expected_completion_at: at, deadline_at_risk: at > b.expiresAt };
}
