import { newBatchId } from './ids.js';

/** Batch status, as OpenAI defines it. The edges between them: `batch-lifecycle.ts`. */
export const BATCH_STATUSES = [
  'validating',
  'failed',
  'in_progress',
  'finalizing',
  'completed',
  'expired',
  'cancelling',
  'cancelled',
] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

export const TERMINAL_STATUSES: ReadonlySet<BatchStatus> = new Set(['failed', 'completed', 'expired', 'cancelled']);
export const isTerminal = (s: BatchStatus): boolean => TERMINAL_STATUSES.has(s);

export const FILE_PURPOSES = ['batch', 'batch_output', 'assistants', 'fine-tune', 'vision', 'user_data', 'evals'] as const;
export type FilePurpose = (typeof FILE_PURPOSES)[number];
/** Purposes a client may upload; `batch_output` is only ever made by the engine. */
export const UPLOAD_PURPOSES: readonly FilePurpose[] = FILE_PURPOSES.filter((p) => p !== 'batch_output');

export interface FileRecord {
  id: string;
  filename: string;
  purpose: FilePurpose;
  bytes: number;
  createdAt: number; // unix seconds
  expiresAt: number | null;
  /** Key of the bytes in the blob store. */
  blobKey: string;
  /** Set on output/error files: the batch that produced them. */
  batchId: string | null;
  /** The project of the API key that uploaded it (of the batch, for output/error files). */
  project: string;
  /** Non-blank lines, counted at upload (the queued-requests quota); null when unknown. */
  lines: number | null;
}

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

export interface RequestCounts {
  total: number;
  completed: number;
  failed: number;
}

export interface Usage {
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  totalTokens: number;
}

export const emptyUsage = (): Usage => ({ inputTokens: 0, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 });

export interface BatchRecord {
  id: string;
  /** The project of the API key that created it (DEFAULT_PROJECT when BESH runs without keys). */
  project: string;
  inputFileId: string;
  endpoint: string;
  completionWindow: string;
  status: BatchStatus;
  model: string | null;
  metadata: Record<string, string> | null;
  errors: BatchError[] | null;
  outputFileId: string | null;
  errorFileId: string | null;
  createdAt: number;
  inProgressAt: number | null;
  expiresAt: number;
  finalizingAt: number | null;
  completedAt: number | null;
  failedAt: number | null;
  expiredAt: number | null;
  cancellingAt: number | null;
  cancelledAt: number | null;
  requestCounts: RequestCounts;
  usage: Usage;
  /** Seconds the output/error files live after they are written (OpenAI `output_expires_after`). */
  outputExpiresAfter: number | null;
  /** Derived when read, never stored: requests in flight on every replica (0 once finished). */
  inFlight: number;
  /** Which bytes the shards are ranges of: the input file, or validation's copy of it grouped by prompt prefix. */
  inputOrder: InputOrder;
}

export type InputOrder = 'file' | 'prefix';

/** Live, in-memory figures the engine adds to a batch object (never persisted separately). */
export interface BatchLive {
  /** 1-based place among batches waiting for admission, null when admitted or finished. */
  queuePosition: number | null;
  inFlight: number;
}

/** A page of a cursor-paginated list. */
export interface Page<T> {
  data: T[];
  hasMore: boolean;
}

export interface ListFilesQuery {
  /** Only this project's files; undefined = every project (admin). */
  project?: string | undefined;
  purpose?: FilePurpose | undefined;
  limit: number;
  order: 'asc' | 'desc';
  after?: string | undefined;
}

export interface ListBatchesQuery {
  /** Only this project's batches; undefined = every project (admin). */
  project?: string | undefined;
  limit: number;
  after?: string | undefined;
}

/** When a finished batch reached its terminal status (unix seconds); null while it is unfinished. */
export const finishedAt = (b: Pick<BatchRecord, 'completedAt' | 'failedAt' | 'cancelledAt' | 'expiredAt'>): number | null =>
  b.completedAt ?? b.failedAt ?? b.cancelledAt ?? b.expiredAt;

/** A batch as created: validating, nothing run yet (the fields a client chose, and the times). */
export function newBatch(p: Pick<BatchRecord, 'project' | 'inputFileId' | 'endpoint' | 'completionWindow' | 'metadata' | 'createdAt' | 'expiresAt' | 'outputExpiresAfter'> & { id?: string }): BatchRecord {
  return {
    id: p.id ?? newBatchId(),
    project: p.project,
    inputFileId: p.inputFileId,
    endpoint: p.endpoint,
    completionWindow: p.completionWindow,
    status: 'validating',
    model: null,
    metadata: p.metadata,
    errors: null,
    outputFileId: null,
    errorFileId: null,
    createdAt: p.createdAt,
    inProgressAt: null,
    expiresAt: p.expiresAt,
    finalizingAt: null,
    completedAt: null,
    failedAt: null,
    expiredAt: null,
    cancellingAt: null,
    cancelledAt: null,
    requestCounts: { total: 0, completed: 0, failed: 0 },
    usage: emptyUsage(),
    outputExpiresAfter: p.outputExpiresAfter,
    inFlight: 0,
    inputOrder: 'file',
  };
}
