import type { ApiKeyRecord, BatchError, BatchRecord, BatchStatus, FilePurpose, FileRecord } from '../../domain/index.js';
import type { ResultKind } from '../blob-keys.js';
import type { ReplicaRecord, SegmentRecord, ShardOutcome, ShardRecord, ShardState } from '../meta-store.js';

/** A `files` row (integers as JS numbers, in both dialects). */
export interface FileRow {
  seq: number;
  id: string;
  filename: string;
  purpose: string;
  bytes: number;
  created_at: number;
  expires_at: number | null;
  blob_key: string;
  batch_id: string | null;
  project: string;
  lines: number | null;
}

/** A `batches` row. `metadata` and `errors` are JSON text. */
export interface BatchRow {
  seq: number;
  id: string;
  project: string;
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  status: string;
  model: string | null;
  metadata: string | null;
  errors: string | null;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_total: number;
  request_completed: number;
  request_failed: number;
  input_tokens: number;
  cached_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  output_expires_after: number | null;
  lease_owner: string | null;
  lease_epoch: number;
  lease_expires_at: number | null;
  input_order: string;
  /** Derived by the live read (not a column): requests in flight over live shard leases. */
  in_flight: number;
}

/** Named parameters for inserting a file (everything but `seq`). */
export type FileParams = Omit<FileRow, 'seq'>;
/** Named parameters for inserting a batch (everything but `seq`, the lease and derived columns). */
export type BatchParams = Omit<BatchRow, 'seq' | 'lease_owner' | 'lease_epoch' | 'lease_expires_at' | 'in_flight' | 'input_order'>;

export function fileToParams(f: FileRecord): FileParams {
  return {
    id: f.id,
    filename: f.filename,
    purpose: f.purpose,
    bytes: f.bytes,
    created_at: f.createdAt,
    expires_at: f.expiresAt,
    blob_key: f.blobKey,
    batch_id: f.batchId,
    project: f.project,
    lines: f.lines,
  };
}

export function rowToFile(r: FileRow): FileRecord {
  return {
    id: r.id,
    filename: r.filename,
    // The column only ever holds values written from a FilePurpose.
    purpose: r.purpose as FilePurpose,
    bytes: r.bytes,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    blobKey: r.blob_key,
    batchId: r.batch_id,
    project: r.project,
    lines: r.lines,
  };
}

export function batchToParams(b: BatchRecord): BatchParams {
  return {
    id: b.id,
    project: b.project,
    input_file_id: b.inputFileId,
    endpoint: b.endpoint,
    completion_window: b.completionWindow,
    status: b.status,
    model: b.model,
    metadata: toJson(b.metadata),
    errors: toJson(b.errors),
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
    request_total: b.requestCounts.total,
    request_completed: b.requestCounts.completed,
    request_failed: b.requestCounts.failed,
    input_tokens: b.usage.inputTokens,
    cached_tokens: b.usage.cachedTokens,
    output_tokens: b.usage.outputTokens,
    reasoning_tokens: b.usage.reasoningTokens,
    total_tokens: b.usage.totalTokens,
    output_expires_after: b.outputExpiresAfter,
  };
}

export function rowToBatch(r: BatchRow): BatchRecord {
  return {
    id: r.id,
    project: r.project,
    inputFileId: r.input_file_id,
    endpoint: r.endpoint,
    completionWindow: r.completion_window,
    // The column only ever holds values written from a BatchStatus.
    status: r.status as BatchStatus,
    model: r.model,
    metadata: fromJson<Record<string, string>>(r.metadata),
    errors: fromJson<BatchError[]>(r.errors),
    outputFileId: r.output_file_id,
    errorFileId: r.error_file_id,
    createdAt: r.created_at,
    inProgressAt: r.in_progress_at,
    expiresAt: r.expires_at,
    finalizingAt: r.finalizing_at,
    completedAt: r.completed_at,
    failedAt: r.failed_at,
    expiredAt: r.expired_at,
    cancellingAt: r.cancelling_at,
    cancelledAt: r.cancelled_at,
    requestCounts: { total: r.request_total, completed: r.request_completed, failed: r.request_failed },
    usage: {
      inputTokens: r.input_tokens,
      cachedTokens: r.cached_tokens,
      outputTokens: r.output_tokens,
      reasoningTokens: r.reasoning_tokens,
      totalTokens: r.total_tokens,
    },
    outputExpiresAfter: r.output_expires_after,
    inFlight: r.in_flight ?? 0,
    // The column only ever holds values written from an InputOrder.
    inputOrder: r.input_order === 'prefix' ? 'prefix' : 'file',
  };
}

/** JSON text for a nullable column: `null` stays SQL NULL (not the string "null"). */
export function toJson(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

function fromJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

/** An `api_keys` row. */
export interface ApiKeyRow {
  seq: number;
  id: string;
  project: string;
  admin: number;
  name: string | null;
  hash: string;
  prefix: string;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

export function apiKeyToParams(k: ApiKeyRecord): Omit<ApiKeyRow, 'seq'> {
  return {
    id: k.id,
    project: k.project,
    admin: k.admin ? 1 : 0,
    name: k.name,
    hash: k.hash,
    prefix: k.prefix,
    created_at: k.createdAt,
    revoked_at: k.revokedAt,
    last_used_at: k.lastUsedAt,
  };
}

export function rowToApiKey(r: ApiKeyRow): ApiKeyRecord {
  return {
    id: r.id,
    project: r.project,
    admin: r.admin === 1,
    name: r.name,
    hash: r.hash,
    prefix: r.prefix,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

/** A `batch_shards` row. */
export interface ShardRow {
  batch_id: string;
  shard_no: number;
  first_line: number;
  requests: number;
  start_byte: number;
  end_byte: number;
  state: string;
  lease_owner: string | null;
  epoch: number;
  lease_expires_at: number | null;
  completed: number;
  failed: number;
  input_tokens: number;
  cached_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  in_flight: number;
  outcome: string | null;
}

export function rowToShard(r: ShardRow): ShardRecord {
  return {
    batchId: r.batch_id,
    shardNo: r.shard_no,
    firstLine: r.first_line,
    requests: r.requests,
    startByte: r.start_byte,
    endByte: r.end_byte,
    // These columns only ever hold values written from the matching unions.
    state: r.state as ShardState,
    owner: r.lease_owner,
    epoch: r.epoch,
    leaseExpiresAt: r.lease_expires_at,
    completed: r.completed,
    failed: r.failed,
    usage: {
      inputTokens: r.input_tokens,
      cachedTokens: r.cached_tokens,
      outputTokens: r.output_tokens,
      reasoningTokens: r.reasoning_tokens,
      totalTokens: r.total_tokens,
    },
    inFlight: r.in_flight,
    outcome: r.outcome as ShardOutcome | null,
  };
}

/** A `result_segments` row. */
export interface SegmentRow {
  batch_id: string;
  kind: string;
  shard_no: number;
  epoch: number;
  seq: number;
  blob_key: string;
  lines: number | null;
  bytes: number | null;
  created_at: number;
}

export function rowToSegment(r: SegmentRow): SegmentRecord {
  return {
    batchId: r.batch_id,
    kind: r.kind as ResultKind,
    shardNo: r.shard_no,
    epoch: r.epoch,
    seq: r.seq,
    blobKey: r.blob_key,
    lines: r.lines,
    bytes: r.bytes,
    createdAt: r.created_at,
  };
}

/** A `replicas` row with its live lease count. */
export interface ReplicaRow {
  id: string;
  host: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
  state: string;
  in_flight: number;
  worker_limit: number;
  version: string;
  leases: number;
}

export function rowToReplica(r: ReplicaRow): ReplicaRecord {
  return {
    id: r.id,
    host: r.host,
    pid: r.pid,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
    state: r.state,
    inFlight: r.in_flight,
    workerLimit: r.worker_limit,
    version: r.version,
    leases: r.leases,
  };
}
