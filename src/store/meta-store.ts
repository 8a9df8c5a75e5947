import type {
  ApiKeyRecord,
  BatchError,
  BatchRecord,
  BatchStatus,
  FileRecord,
  ListBatchesQuery,
  ListFilesQuery,
  Page,
  ProjectLimits,
  ProjectUsage,
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
  /**
   * Records a file. With `maxStoredBytes` (null = no limit), only if its project's stored bytes
   * stay within it, checked and written in one transaction. Returns whether it was recorded.
   */
  insertFile(file: FileRecord, maxStoredBytes?: number | null): Promise<boolean>;
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
  /** Bytes of stored files (of one project, or all), summed by purpose (purposes with no file are absent). */
  bytesByPurpose(project?: string): Promise<Record<string, number>>;

  // batches
  /**
   * Records a batch. With a quota, only if its project stays within the limits once it holds
   * `quota.requests` more queued requests, checked and written in one transaction. Returns the
   * limit that refused it, or null when it was recorded.
   */
  insertBatch(batch: BatchRecord, quota?: BatchQuota): Promise<keyof BatchQuotaLimits | null>;
  getBatch(id: string): Promise<BatchRecord | null>;
  /** Newest first. */
  listBatches(q: ListBatchesQuery): Promise<Page<BatchRecord>>;
  /** Batches not yet in a terminal status, oldest first: what the engine must (re)take on start. */
  listUnfinishedBatches(): Promise<BatchRecord[]>;
  /** Does any unfinished batch read this input file? */
  isInputOfUnfinishedBatch(fileId: string): Promise<boolean>;
  deleteBatch(id: string): Promise<boolean>;
  /** How many batches (of one project, or all) are in each status (statuses with none are absent). */
  countBatchesByStatus(project?: string): Promise<Partial<Record<BatchStatus, number>>>;

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
  /** How many batches (of one project, or all) created at or after `since` (unix seconds) are in each status. */
  countBatchesCreatedSince(since: number, project?: string): Promise<Partial<Record<BatchStatus, number>>>;

  // analytics: one row per minute, never per request
  /** Adds each row's counters to the stored minute (creating it). */
  addAnalyticsMinutes(rows: readonly AnalyticsMinute[]): Promise<void>;
  /** Minutes in [from, to), oldest first (unix seconds), of one project or summed over all. */
  listAnalyticsMinutes(from: number, to: number, project?: string): Promise<AnalyticsMinute[]>;
  /** Drops minutes before `before`; returns how many. */
  pruneAnalyticsMinutes(before: number): Promise<number>;

  // projects and keys
  /** What the project holds now (the quotas measure this). */
  projectUsage(project: string): Promise<ProjectUsage>;
  /** Bytes of stored files by project (projects with no file are absent). */
  storedBytesByProject(): Promise<Record<string, number>>;
  /** Every project that holds a file, a batch, a key or limits, by name. */
  listProjects(): Promise<string[]>;
  /** The project's own limits (null fields: the server's defaults apply; 0: no limit). */
  getProjectLimits(project: string): Promise<ProjectLimits>;
  /** Sets the given fields (undefined fields keep their value). */
  setProjectLimits(project: string, limits: Partial<ProjectLimits>): Promise<void>;
  insertApiKey(key: ApiKeyRecord): Promise<void>;
  /** The key with this secret hash, revoked or not. */
  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | null>;
  /** Oldest first. */
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked; false when there is no such key or it was already revoked. */
  revokeApiKey(id: string, at: number): Promise<boolean>;
  /** Keys ever created, revoked ones included: once there is one, BESH never runs open again. */
  countApiKeys(): Promise<number>;
  touchApiKey(id: string, at: number): Promise<void>;

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

export type BatchQuotaLimits = Pick<ProjectLimits, 'maxActiveBatches' | 'maxQueuedRequests'>;

/** The limits a new batch is checked against (null = no limit), and how many requests it brings. */
export interface BatchQuota extends BatchQuotaLimits {
  requests: number;
}

export interface BatchesPageQuery {
  /** Only this project's batches; undefined = every project. */
  project?: string | undefined;
  status?: BatchStatus | undefined;
  limit: number;
  offset: number;
}

/** Counters of one minute of one project; `minute` is the unix time (seconds) of its start. */
export interface AnalyticsMinute {
  project: string;
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

/** Zero counters; `project` defaults to '*' (a sum over every project). */
export const emptyMinute = (minute: number, project = '*'): AnalyticsMinute => ({
  project,
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
