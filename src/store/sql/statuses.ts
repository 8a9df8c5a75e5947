import { type BatchStatus, UNFINISHED_STATUSES } from '../../domain/index.js';

/** The column stamped with `at` when a batch enters each status (`validating` has none). */
export const TIMESTAMP_COLUMN: Readonly<Record<BatchStatus, string | null>> = {
  validating: null,
  in_progress: 'in_progress_at',
  finalizing: 'finalizing_at',
  completed: 'completed_at',
  failed: 'failed_at',
  expired: 'expired_at',
  cancelling: 'cancelling_at',
  cancelled: 'cancelled_at',
};

/** A SQL list of string literals from constant identifiers (never from client input). */
export function sqlList(values: readonly string[]): string {
  for (const v of values) if (!/^[a-z_]+$/.test(v)) throw new Error(`Not a plain identifier: ${v}`);
  return values.map((v) => `'${v}'`).join(', ');
}

/** Every status that is not terminal. */
export const UNFINISHED_SQL = sqlList(UNFINISHED_STATUSES);

/** Statuses whose unanswered requests count against `maxQueuedRequests`: waiting or running. */
export const QUEUED_SQL = sqlList(['validating', 'in_progress']);

/** Statuses in which a batch's shards are claimed and run. */
export const RUN_STATUSES: readonly BatchStatus[] = ['in_progress', 'cancelling'];
export const RUN_SQL = sqlList(RUN_STATUSES);

/** Statuses in which a batch with every shard done is finalized. */
export const FINALIZE_SQL = sqlList(['in_progress', 'cancelling', 'finalizing']);
