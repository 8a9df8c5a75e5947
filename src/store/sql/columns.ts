import type { BatchParams, FileParams } from './rows.js';

/** Keys of a record type, in declaration order, checked exhaustive by the compiler. */
const keys = <T>(record: Record<keyof T, true>): (keyof T & string)[] => Object.keys(record) as (keyof T & string)[];

/** The columns an inserted file row names (all but `seq`). */
export const FILE_COLUMNS = keys<FileParams>({
  id: true,
  filename: true,
  purpose: true,
  bytes: true,
  created_at: true,
  expires_at: true,
  blob_key: true,
  batch_id: true,
  project: true,
  lines: true,
});

/** The columns an inserted batch row names (all but `seq`, the lease and the derived columns). */
export const BATCH_COLUMNS = keys<BatchParams>({
  id: true,
  project: true,
  input_file_id: true,
  endpoint: true,
  completion_window: true,
  status: true,
  model: true,
  metadata: true,
  errors: true,
  output_file_id: true,
  error_file_id: true,
  created_at: true,
  in_progress_at: true,
  expires_at: true,
  finalizing_at: true,
  completed_at: true,
  failed_at: true,
  expired_at: true,
  cancelling_at: true,
  cancelled_at: true,
  request_total: true,
  request_completed: true,
  request_failed: true,
  input_tokens: true,
  cached_tokens: true,
  output_tokens: true,
  reasoning_tokens: true,
  total_tokens: true,
  output_expires_after: true,
});

/** The token columns, named alike on `batches` and `batch_shards`. */
export const USAGE_COLUMNS = ['input_tokens', 'cached_tokens', 'output_tokens', 'reasoning_tokens', 'total_tokens'] as const;
export type UsageColumn = (typeof USAGE_COLUMNS)[number];

/** The request counters of `batches`. */
export const REQUEST_COUNT_COLUMNS = ['request_total', 'request_completed', 'request_failed'] as const;

/** `INSERT INTO table (a, b) VALUES (@a, @b)`: named parameters, as both dialects bind them. */
export function insertSql(table: string, columns: readonly string[]): string {
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`;
}
