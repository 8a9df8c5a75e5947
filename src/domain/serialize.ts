import type { BatchLive, BatchRecord, FileRecord } from './types.js';

/** OpenAI `File` object. */
export function serializeFile(f: FileRecord): Record<string, unknown> {
  return {
    id: f.id,
    object: 'file',
    bytes: f.bytes,
    created_at: f.createdAt,
    expires_at: f.expiresAt,
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed',
    status_details: null,
  };
}

/** OpenAI `Batch` object, plus BESH's extra live fields (ignored by the SDKs). */
export function serializeBatch(b: BatchRecord, live?: BatchLive): Record<string, unknown> {
  return {
    id: b.id,
    object: 'batch',
    endpoint: b.endpoint,
    model: b.model,
    errors: b.errors ? { object: 'list', data: b.errors } : null,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: b.createdAt,
    in_progress_at: b.inProgressAt,
    expires_at: b.expiresAt,
    finalizing_at: b.finalizingAt,
    completed_at: b.completedAt,
    failed_at: b.failedAt,
    expired_at: b.expiredAt,
    cancelling_at: b.cancellingAt,
    cancelled_at: b.cancelledAt,
    request_counts: { ...b.requestCounts },
    usage: {
      input_tokens: b.usage.inputTokens,
      input_tokens_details: { cached_tokens: b.usage.cachedTokens },
      output_tokens: b.usage.outputTokens,
      output_tokens_details: { reasoning_tokens: b.usage.reasoningTokens },
      total_tokens: b.usage.totalTokens,
    },
    metadata: b.metadata,
    queue_position: live?.queuePosition ?? null,
    in_flight: live?.inFlight ?? 0,
  };
}
