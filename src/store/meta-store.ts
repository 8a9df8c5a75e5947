import type {
  BatchError,
  BatchRecord,
  BatchStatus,
  FileRecord,
  ListBatchesQuery,
  ListFilesQuery,
  Page,
  RequestCounts,
  Usage,
} from '../domain/index.js';

/**
 * The metadata store: files and batches, in domain verbs. It exposes no connection or
 * transaction type, so the engine and the API never see which SQL dialect is behind it.
 * Finished requests are NOT rows here: the append-only output/error blobs are the source of truth
 * (DESIGN.md), and the batch row only carries counters flushed every ~0.5 s.
 */
export interface MetaStore {
  // files
  insertFile(file: FileRecord): Promise<void>;
  getFile(id: string): Promise<FileRecord | null>;
  listFiles(q: ListFilesQuery): Promise<Page<FileRecord>>;
  /** Removes the row; returns false if there was none. */
  deleteFile(id: string): Promise<boolean>;
  /**
   * Files whose `expires_at` is at or before `now` and that no unfinished batch reads, oldest
   * expiry first, at most `limit`.
   */
  listExpiredFiles(now: number, limit: number): Promise<FileRecord[]>;
  /**
   * Removes the row only if it is still expired at `now` and still not the input of an unfinished
   * batch, checked in the same write (a batch created meanwhile keeps its input). Returns whether
   * it was removed; the caller then removes the bytes.
   */
  deleteExpiredFile(id: string, now: number): Promise<boolean>;
  /** Bytes of all stored files, summed by purpose (purposes with no file are absent). */
  bytesByPurpose(): Promise<Record<string, number>>;

  // batches
  insertBatch(batch: BatchRecord): Promise<void>;
  getBatch(id: string): Promise<BatchRecord | null>;
  /** Newest first. */
  listBatches(q: ListBatchesQuery): Promise<Page<BatchRecord>>;
  /** Batches not yet in a terminal status, oldest first: what the engine must (re)take on start. */
  listUnfinishedBatches(): Promise<BatchRecord[]>;
  /** Does any unfinished batch read this input file? */
  isInputOfUnfinishedBatch(fileId: string): Promise<boolean>;
  deleteBatch(id: string): Promise<boolean>;
  /** How many batches are in each status (statuses with none are absent). */
  countBatchesByStatus(): Promise<Partial<Record<BatchStatus, number>>>;

  /**
   * Moves a batch to `to` only if its current status is one of `from` (compare-and-set), setting
   * the matching timestamp and the given fields in the same write. Returns the updated batch, or
   * null when the batch was not in one of `from` (someone else moved it first).
   */
  transition(id: string, from: readonly BatchStatus[], to: BatchStatus, at: number, fields?: TransitionFields): Promise<BatchRecord | null>;
  /** Flushes live counters of an unfinished batch. */
  saveProgress(id: string, counts: RequestCounts, usage: Usage): Promise<void>;

  // dashboard
  /** Newest first, optionally one status, by offset (the dashboard's numbered pages). */
  listBatchesPage(q: BatchesPageQuery): Promise<{ data: BatchRecord[]; total: number }>;
  /** How many batches created at or after `since` (unix seconds) are in each status. */
  countBatchesCreatedSince(since: number): Promise<Partial<Record<BatchStatus, number>>>;

  // analytics: one row per minute, never per request
  /** Adds each row's counters to the stored minute (creating it). */
  addAnalyticsMinutes(rows: readonly AnalyticsMinute[]): Promise<void>;
  /** Minutes in [from, to), oldest first (unix seconds). */
  listAnalyticsMinutes(from: number, to: number): Promise<AnalyticsMinute[]>;
  /** Drops minutes before `before`; returns how many. */
  pruneAnalyticsMinutes(before: number): Promise<number>;

  close(): Promise<void>;
}

export interface TransitionFields {
  errors?: BatchError[] | null;
  outputFileId?: string | null;
  errorFileId?: string | null;
  requestCounts?: RequestCounts;
  usage?: Usage;
  model?: string | null;
  /** Files created in the same write (output/error files at finalize). */
  insertFiles?: FileRecord[];
}

export interface BatchesPageQuery {
  status?: BatchStatus | undefined;
  limit: number;
  offset: number;
}

/** Counters of one minute; `minute` is the unix time (seconds) of its start. */
export interface AnalyticsMinute {
  minute: number;
  requestsCompleted: number;
  requestsFailed: number;
  retries: number;
  latencyMsSum: number;
  inputTokens: number;
  outputTokens: number;
  batchesCreated: number;
  batchesFinished: number;
  batchSecondsSum: number;
  uploads: number;
  uploadBytes: number;
}

export const ANALYTICS_COUNTERS = [
  'requestsCompleted',
  'requestsFailed',
  'retries',
  'latencyMsSum',
  'inputTokens',
  'outputTokens',
  'batchesCreated',
  'batchesFinished',
  'batchSecondsSum',
  'uploads',
  'uploadBytes',
] as const satisfies readonly (keyof AnalyticsMinute)[];

export const emptyMinute = (minute: number): AnalyticsMinute => ({
  minute,
  requestsCompleted: 0,
  requestsFailed: 0,
  retries: 0,
  latencyMsSum: 0,
  inputTokens: 0,
  outputTokens: 0,
  batchesCreated: 0,
  batchesFinished: 0,
  batchSecondsSum: 0,
  uploads: 0,
  uploadBytes: 0,
});
