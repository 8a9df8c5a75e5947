import { type BatchStatus, TERMINAL_STATUSES } from './types.js';

/**
 * The batch state machine: every status change any replica makes is one of these edges, and
 * `MetaStore.transition` refuses any other (the statuses are what SDKs and scripts switch on, and
 * several processes take these edges, so the graph must be exact).
 *
 *   validating ─┬─► in_progress   the input passed validation; its shards are created in the same write
 *               ├─► failed        the input failed validation (errors.data names the lines), or is gone
 *               ├─► cancelling    cancel, before or during validation (→ cancelled, nothing ran)
 *               └─► expired       expires_at passed before the batch was validated
 *   in_progress ┬─► finalizing    every shard is done: its result files are being composed
 *               ├─► cancelling    cancel: no new lines; in-flight requests end; the rest → batch_cancelled
 *               ├─► expired       a shard hit expires_at: its unsent lines → batch_expired, files composed
 *               └─► failed        a fault no retry can fix (a result that cannot be written)
 *   finalizing ─┬─► completed     the output/error files are recorded in the same write
 *               ├─► cancelling    cancel while finalizing: it ends cancelled, with every result
 *               ├─► expired       the deadline was hit by a shard, found when finalizing
 *               └─► failed        the files could not be composed
 *   cancelling ─┬─► cancelled     every shard settled; partial results recorded in the same write
 *               ├─► expired       the deadline passed before the cancel settled (expiry wins, as it aborts at once)
 *               └─► failed        a fault while settling
 *
 * A batch waiting for a replica keeps `validating`; its place in the queue is an extra field.
 */
export const BATCH_TRANSITIONS: Readonly<Record<BatchStatus, readonly BatchStatus[]>> = {
  validating: ['in_progress', 'failed', 'cancelling', 'expired'],
  in_progress: ['finalizing', 'cancelling', 'expired', 'failed'],
  finalizing: ['completed', 'cancelling', 'expired', 'failed'],
  cancelling: ['cancelled', 'expired', 'failed'],
  completed: [],
  failed: [],
  expired: [],
  cancelled: [],
};

export const canTransition = (from: BatchStatus, to: BatchStatus): boolean => BATCH_TRANSITIONS[from].includes(to);

/** Throws unless every `from → to` is an edge of the table (a programming error, never a race). */
export function assertTransitions(from: readonly BatchStatus[], to: BatchStatus): void {
  for (const f of from) {
    if (!canTransition(f, to)) throw new Error(`Batch status ${f} → ${to} is not an edge of BATCH_TRANSITIONS`);
  }
}

/** Statuses in which a batch still has work: every one that is not terminal. */
export const UNFINISHED_STATUSES: readonly BatchStatus[] = (Object.keys(BATCH_TRANSITIONS) as BatchStatus[]).filter((s) => !TERMINAL_STATUSES.has(s));

/** Statuses in which a batch's shards exist and are being worked. */
export const RUNNING_STATUSES: readonly BatchStatus[] = ['in_progress', 'finalizing', 'cancelling'];
