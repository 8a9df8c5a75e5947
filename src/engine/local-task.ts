import type { LeaseFence, ShardFence, ShardProgress } from '../store/meta-store.js';

/**
 * Why a task stops before its work is done, by priority (a higher one overrides a lower one):
 *   shutdown    SIGTERM: stop taking lines, let in-flight requests end within shutdownGraceMs,
 *               give the lease back; another replica (or the next start) resumes from the results
 *   cancel      the batch is cancelling: stop taking lines, let in-flight requests end within
 *               cancelGraceMs, write the lines never sent as batch_cancelled
 *   expire      expires_at passed: abort everything at once, unsent lines → batch_expired
 *   lease_lost  another replica took the lease over (we were paused or partitioned): abort at
 *               once and write nothing more — the new holder owns the results now
 *   delete      the batch was deleted (or ended elsewhere): abort at once, write nothing more
 */
export type StopReason = 'shutdown' | 'cancel' | 'expire' | 'lease_lost' | 'delete';

export const STOP_PRIORITY: Record<StopReason, number> = { shutdown: 1, cancel: 2, expire: 3, lease_lost: 4, delete: 5 };

/** What the heartbeat renews for a task: a shard lease with its live counters, or a batch lease. */
export type LeaseEntry = { kind: 'shard'; fence: ShardFence; progress: ShardProgress } | { kind: 'batch'; fence: LeaseFence };

/** A piece of work this replica holds a lease for: validating a batch, running a shard, or finalizing. */
export interface LocalTask {
  readonly kind: 'validate' | 'shard' | 'finalize';
  readonly batchId: string;
  readonly project: string;
  /** Settles when the task has ended and given its lease back (never rejects). */
  readonly done: Promise<void>;
  stop(reason: StopReason): void;
  lease(): LeaseEntry;
}
