import { type UsageColumn } from './columns.js';
import type { BatchRow } from './rows.js';
import { QUEUED_SQL, UNFINISHED_SQL } from './statuses.js';

// The live read of a batch (cluster-store-spec.md, "Live batch reads"): while it is unfinished and
// has shards, its counters are the sums over its shards, as fresh as the last heartbeat. `now` is
// the store clock in ms as the dialect spells it (a bound parameter, or an expression).

/** A live lease on the row aliased `a` (a batch or a shard: both name the columns alike). */
export const liveLease = (a: string, now: string): string => `(${a}.lease_owner IS NOT NULL AND ${a}.lease_expires_at > ${now})`;

/** A shard that may be claimed: not done, and never leased, given back or expired. */
export const claimableShard = (s: string, now: string): string =>
  `(${s}.state <> 'done' AND (${s}.lease_owner IS NULL OR ${s}.lease_expires_at <= ${now}))`;

type ShardCounter = 'completed' | 'failed' | UsageColumn;

/** The sum of a shard column over the batch aliased `b`, or its stored column when it is finished or has no shard. */
function liveCounter(b: string, column: keyof BatchRow, shardColumn: ShardCounter): string {
  return `COALESCE(CASE WHEN ${b}.status IN (${UNFINISHED_SQL})
    THEN (SELECT CAST(SUM(ls.${shardColumn}) AS BIGINT) FROM batch_shards ls WHERE ls.batch_id = ${b}.id) END, ${b}.${column})`;
}

const LIVE: Partial<Record<keyof BatchRow, ShardCounter>> = {
  request_completed: 'completed',
  request_failed: 'failed',
  input_tokens: 'input_tokens',
  cached_tokens: 'cached_tokens',
  output_tokens: 'output_tokens',
  reasoning_tokens: 'reasoning_tokens',
  total_tokens: 'total_tokens',
};

/** Every column of a BatchRow, in order (the compiler checks none is missing). */
const BATCH_ROW: Record<keyof BatchRow, null> = {
  seq: null,
  id: null,
  project: null,
  input_file_id: null,
  endpoint: null,
  completion_window: null,
  status: null,
  model: null,
  metadata: null,
  errors: null,
  output_file_id: null,
  error_file_id: null,
  created_at: null,
  in_progress_at: null,
  expires_at: null,
  finalizing_at: null,
  completed_at: null,
  failed_at: null,
  expired_at: null,
  cancelling_at: null,
  cancelled_at: null,
  request_total: null,
  request_completed: null,
  request_failed: null,
  input_tokens: null,
  cached_tokens: null,
  output_tokens: null,
  reasoning_tokens: null,
  total_tokens: null,
  output_expires_after: null,
  lease_owner: null,
  lease_epoch: null,
  lease_expires_at: null,
  input_order: null,
  in_flight: null,
};

/** The select list of a live BatchRow from `batches` aliased `b` (correlated primary-key lookups on batch_shards). */
export function liveBatchColumns(now: string, b = 'b'): string {
  return (Object.keys(BATCH_ROW) as (keyof BatchRow)[])
    .map((c) => {
      const shardColumn = LIVE[c];
      if (shardColumn !== undefined) return `${liveCounter(b, c, shardColumn)} AS ${c}`;
      if (c === 'in_flight') {
        return `CASE WHEN ${b}.status IN (${UNFINISHED_SQL}) THEN COALESCE((SELECT CAST(SUM(fs.in_flight) AS BIGINT) FROM batch_shards fs
          WHERE fs.batch_id = ${b}.id AND ${liveLease('fs', now)}), 0) ELSE 0 END AS in_flight`;
      }
      return `${b}.${c}`;
    })
    .join(',\n  ');
}

/**
 * Unanswered requests of one project (the queued-requests quota), as column `n`: a running batch's
 * total less its live completed and failed counts; a batch still validating, its input file's lines.
 * QUEUED_SQL is unfinished, so the live count is the shards' sum (or the stored counts without
 * shards), read with one correlated subquery per batch: this runs in every quota-checked insert.
 */
export function queuedRequestsSql(projectParam: string): string {
  const done = `COALESCE((SELECT CAST(SUM(qs.completed + qs.failed) AS BIGINT) FROM batch_shards qs WHERE qs.batch_id = b.id), b.request_completed + b.request_failed)`;
  return `SELECT CAST(COALESCE(SUM(CASE WHEN b.request_total > 0 THEN b.request_total - ${done} ELSE COALESCE(f.lines, 0) END), 0) AS BIGINT) AS n
    FROM batches b LEFT JOIN files f ON f.id = b.input_file_id
    WHERE b.project = ${projectParam} AND b.status IN (${QUEUED_SQL})`;
}
