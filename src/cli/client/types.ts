/** The API objects the CLI reads: the OpenAI shapes plus BESH's extra live fields. */

export const BATCH_STATUSES = ['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** Statuses a batch never leaves. */
export const TERMINAL_STATUSES: readonly string[] = ['completed', 'failed', 'expired', 'cancelled'];

export interface BatchError {
  code: string | null;
  message: string | null;
  param: string | null;
  line: number | null;
}

export interface Usage {
  input_tokens: number;
  input_tokens_details?: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details?: { reasoning_tokens: number };
  total_tokens: number;
}

export interface Batch {
  id: string;
  object: 'batch';
  endpoint: string;
  model?: string | null;
  errors: { object: 'list'; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: string;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  usage?: Usage | null;
  metadata: Record<string, string> | null;
  /** BESH: place among waiting batches (1 = next), null when running or done. */
  queue_position?: number | null;
  /** BESH: requests being processed right now. */
  in_flight?: number;
}

export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  expires_at: number | null;
  filename: string;
  purpose: string;
  status?: string;
}

export interface ListPage<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

export interface Deleted {
  id: string;
  object: string;
  deleted: boolean;
}

type LimitsView = { max_stored_bytes: number | null; max_active_batches: number | null; max_queued_requests: number | null };

export interface ProjectView {
  name: string;
  stored_bytes: number;
  active_batches: number;
  queued_requests: number;
  /** In force (null = no limit). */
  limits: LimitsView;
  /** The project's own settings (null = the server's default, 0 = no limit). */
  own_limits: LimitsView;
}
