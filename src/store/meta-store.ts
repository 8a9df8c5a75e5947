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

  /**
   * Moves a batch to `to` only if its current status is one of `from` (compare-and-set), setting
   * the matching timestamp and the given fields in the same write. Returns the updated batch, or
   * null when the batch was not in one of `from` (someone else moved it first).
   */
  transition(id: string, from: readonly BatchStatus[], to: BatchStatus, at: number, fields?: TransitionFields): Promise<BatchRecord | null>;
  /** Flushes live counters of an unfinished batch. */
  saveProgress(id: string, counts: RequestCounts, usage: Usage): Promise<void>;

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
