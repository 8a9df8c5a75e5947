import type { BatchStatus, RequestCounts, Usage } from '../../domain/index.js';
import type { LeaseFence, TransitionFields } from '../meta-store.js';
import { REQUEST_COUNT_COLUMNS, USAGE_COLUMNS } from './columns.js';
import { toJson } from './rows.js';
import { TIMESTAMP_COLUMN } from './statuses.js';

/**
 * Named parameters of the single compare-and-set UPDATE of `transition`, but its `from` list (bound
 * as each dialect binds a list). `set_*` and `release_lease` are 0/1 flags; `fence_owner` is null
 * when no fence is given.
 */
export interface TransitionParams {
  id: string;
  to: string;
  at: number;
  set_errors: number;
  errors: string | null;
  set_output_file_id: number;
  output_file_id: string | null;
  set_error_file_id: number;
  error_file_id: string | null;
  set_model: number;
  model: string | null;
  set_counts: number;
  request_total: number;
  request_completed: number;
  request_failed: number;
  set_usage: number;
  input_tokens: number;
  cached_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  release_lease: number;
  set_input_order: number;
  input_order: string | null;
  fence_owner: string | null;
  fence_epoch: number | null;
}

/** A `set_*` parameter: 1 when the field was given (undefined = keep the column's value). */
export const flag = (v: unknown): number => (v === undefined ? 0 : 1);

export function transitionParams(id: string, to: BatchStatus, at: number, f: TransitionFields, fence?: LeaseFence): TransitionParams {
  return {
    id,
    to,
    at,
    set_errors: flag(f.errors),
    errors: toJson(f.errors),
    set_output_file_id: flag(f.outputFileId),
    output_file_id: f.outputFileId ?? null,
    set_error_file_id: flag(f.errorFileId),
    error_file_id: f.errorFileId ?? null,
    set_model: flag(f.model),
    model: f.model ?? null,
    set_counts: flag(f.requestCounts),
    ...countsParams(f.requestCounts ?? { total: 0, completed: 0, failed: 0 }),
    set_usage: flag(f.usage),
    ...usageParams(f.usage ?? { inputTokens: 0, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 }),
    release_lease: f.releaseLease === true ? 1 : 0,
    set_input_order: flag(f.inputOrder),
    input_order: f.inputOrder ?? null,
    fence_owner: fence?.owner ?? null,
    fence_epoch: fence?.epoch ?? null,
  };
}

export function countsParams(c: RequestCounts): { request_total: number; request_completed: number; request_failed: number } {
  return { request_total: c.total, request_completed: c.completed, request_failed: c.failed };
}

export function usageParams(u: Usage): Record<(typeof USAGE_COLUMNS)[number], number> {
  return {
    input_tokens: u.inputTokens,
    cached_tokens: u.cachedTokens,
    output_tokens: u.outputTokens,
    reasoning_tokens: u.reasoningTokens,
    total_tokens: u.totalTokens,
  };
}

/**
 * The SET list of the transition UPDATE: which columns change is decided by the bound flags, so
 * the statement is prepared once.
 */
export function transitionSetSql(): string {
  const keep = (column: string, flagName: string, param = column): string => `${column} = CASE WHEN @${flagName} = 1 THEN @${param} ELSE ${column} END`;
  const stamps = Object.entries(TIMESTAMP_COLUMN).flatMap(([status, c]) => (c === null ? [] : [`${c} = CASE WHEN @to = '${status}' THEN @at ELSE ${c} END`]));
  return [
    'status = @to',
    ...stamps,
    keep('errors', 'set_errors'),
    keep('output_file_id', 'set_output_file_id'),
    keep('error_file_id', 'set_error_file_id'),
    keep('model', 'set_model'),
    keep('input_order', 'set_input_order'),
    ...REQUEST_COUNT_COLUMNS.map((c) => keep(c, 'set_counts')),
    ...USAGE_COLUMNS.map((c) => keep(c, 'set_usage')),
    'lease_owner = CASE WHEN @release_lease = 1 THEN NULL ELSE lease_owner END',
    'lease_expires_at = CASE WHEN @release_lease = 1 THEN NULL ELSE lease_expires_at END',
  ].join(',\n  ');
}

/** The fence of the transition UPDATE: no fence, or the caller still holds that batch lease (its epoch; expiry does not matter). */
export const TRANSITION_FENCE_SQL = '(CAST(@fence_owner AS TEXT) IS NULL OR (lease_owner = @fence_owner AND lease_epoch = @fence_epoch))';
