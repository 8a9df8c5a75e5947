import type {
  ApiKeyRecord,
  BatchError,
  BatchRecord,
  BatchStatus,
  FileRecord,
  InputOrder,
  ListBatchesQuery,
  ListFilesQuery,
  Page,
  ProjectLimits,
  ProjectUsage,
  RequestCounts,
  Usage,
} from '../domain/index.js';
import type { ResultKind } from './blob-keys.js';
import type { UploadStore } from './upload-store.js';
import type { WebhookEvent, WebhookStore } from './webhook-store.js';

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
  /**
   * Batches as read by getBatch, listBatches and listBatchesPage are live: while a batch is
   * unfinished and has shards, `requestCounts.completed`/`failed` and `usage` are the sums over its
   * shards (as fresh as the last heartbeat) and `inFlight` the sum over its live shard leases.
   */
  getBatch(id: string): Promise<BatchRecord | null>;
  /** Newest first. */
  listBatches(q: ListBatchesQuery): Promise<Page<BatchRecord>>;
  /** Does any unfinished batch read this input file? */
  isInputOfUnfinishedBatch(fileId: string): Promise<boolean>;
  /** How many batches (of one project, or all) are in each status (statuses with none are absent). */
  countBatchesByStatus(project?: string): Promise<Partial<Record<BatchStatus, number>>>;

  /**
   * Moves a batch to `to` only if its current status is one of `from` (compare-and-set), setting
   * the matching timestamp and the given fields in the same write. Returns the updated batch, or
   * null when the batch was not in one of `from` (someone else moved it first), or when `fence` is
   * given and the caller no longer holds that batch lease. Throws when `from → to` is not an edge
   * of BATCH_TRANSITIONS (a programming error, never a race).
   */
  transition(id: string, from: readonly BatchStatus[], to: BatchStatus, at: number, fields?: TransitionFields, fence?: LeaseFence): Promise<BatchRecord | null>;

  // ── the cluster's division of work: leases ───────────────────────────────────────────────────
  // A batch is validated, and finalized, under a *batch lease*; its input is run as *shards*
  // (line ranges) under *shard leases*. Each lease has an owner (a replica id), an expiry timed
  // by the store's own clock (replicas' clocks need not agree) and an epoch that grows with every
  // claim. Every durable write of a lease holder names its epoch (fencing): once a lease has been
  // taken over, the old holder's writes are refused.

  /** How this store differs from the others; the engine branches on these, never on a dialect. */
  readonly capabilities: StoreCapabilities;
  /** Webhook endpoints and their delivery outbox. */
  readonly webhooks: WebhookStore;
  /** Uploads (files sent in parts). */
  readonly uploads: UploadStore;
  /**
   * Work a replica could claim now, oldest batch first: batches waiting for validation, with
   * claimable shards, or ready to finalize; plus the live leases of each project (fair share).
   */
  listClaimable(limit: number): Promise<ClaimableWork>;
  /**
   * Takes the batch lease when the batch is in one of `from` and no live batch lease is held;
   * the epoch grows by one. Null when someone else holds it or the batch moved.
   */
  claimBatch(id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]): Promise<BatchLease | null>;
  /** Gives the batch lease back (no transition). False when it was no longer held. */
  releaseBatch(fence: LeaseFence): Promise<boolean>;
  /**
   * Takes the lowest-numbered claimable shard of the batch (never claimed, given back, or its
   * lease expired) when the batch is in_progress or cancelling; the shard's epoch grows by one.
   * Concurrent claimers never get the same shard (SKIP LOCKED where the store has it).
   */
  claimShard(batchId: string, owner: string, leaseMs: number): Promise<ShardLease | null>;
  /**
   * One replica's periodic renewal, in one write: its row in the replicas table; every lease it
   * names, renewed (and a shard's live counters saved) only where owner and epoch still match;
   * and the status of each lease's batch (null: the batch was deleted).
   */
  heartbeat(h: Heartbeat): Promise<HeartbeatResult>;
  /**
   * Gives a shard back, fenced by its lease: `outcome` null puts it back to be claimed again
   * (shutdown); otherwise it is done, with its final counters. `remaining` counts the batch's
   * shards not done after this write (the one that sees 0 finalizes the batch).
   */
  releaseShard(r: ShardRelease): Promise<{ held: boolean; remaining: number }>;
  /** The batch's shards, in order. */
  listShards(batchId: string): Promise<ShardRecord[]>;
  /** At start of a store only one process uses (`capabilities.singleReplica`): every lease is a dead process's; frees them all. */
  releaseAllLeases(): Promise<number>;
  /** Batches still validating, with no live batch lease, whose `expires_at` has passed: moved to expired (returned). */
  expireUnclaimed(now: number): Promise<BatchRecord[]>;
  /** Validating batches with no live batch lease (waiting for a replica), oldest first. */
  listQueuedBatches(project: string | undefined, limit: number): Promise<Array<{ id: string; project: string }>>;

  // ── result segments: which blobs hold a batch's results ─────────────────────────────────────
  /** Registers a segment, fenced by the shard lease of `fence` (false: the lease was lost). */
  addSegment(fence: ShardFence, seg: NewSegment): Promise<boolean>;
  /** Records the final size of a registered segment of the fenced shard (any epoch's). */
  sealSegment(fence: ShardFence, blobKey: string, lines: number, bytes: number): Promise<boolean>;
  /** Segments of a batch, by kind, shard, epoch and sequence. */
  listSegments(batchId: string, q?: { shardNo?: number; kind?: ResultKind }): Promise<SegmentRecord[]>;
  /** Forgets every segment of a batch (after its files were composed). Returns how many. */
  deleteSegments(batchId: string): Promise<number>;

  // ── replicas ─────────────────────────────────────────────────────────────────────────────────
  /** Requests in flight over live shard leases (as of their last heartbeat), by the batch's project. */
  inFlightByProject(): Promise<Record<string, number>>;
  /** Every replica that heartbeat within `withinMs`, with its live leases. */
  listReplicas(withinMs: number): Promise<ReplicaRecord[]>;
  /** Forgets replicas silent for more than `olderThanMs`. */
  pruneReplicas(olderThanMs: number): Promise<number>;

  // ── deletion ─────────────────────────────────────────────────────────────────────────────────
  /**
   * Removes a batch from view at once: its row and its output/error file rows go, in one write;
   * a tombstone stays until `purgeBatch`, so replicas still running its shards stop (their
   * heartbeat sees it gone) and its blobs are removed once no live lease is left. Returns the
   * removed batch, or null when there was none.
   */
  deleteBatch(id: string): Promise<BatchRecord | null>;
  /** Deleted batches not purged yet, with their live leases. */
  listTombstones(limit: number): Promise<Array<{ id: string; project: string; deletedAt: number; liveLeases: number }>>;
  /** Forgets a deleted batch's shards, segments and tombstone. */
  purgeBatch(id: string): Promise<void>;

  // ── change feed ──────────────────────────────────────────────────────────────────────────────
  /**
   * Calls `listener` after each batch write: status changes, creations and deletions, and `work`
   * when something became claimable. With `capabilities.crossProcessFeed`, changes made by every
   * replica arrive (LISTEN/NOTIFY); otherwise those of this process only. Returns an unsubscribe.
   */
  subscribe(listener: (e: StoreEvent) => void): () => void;

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
  /** The batch's shards, created in the same write (validating → in_progress). */
  insertShards?: ShardPlan[];
  /** Frees the batch lease in the same write. */
  releaseLease?: boolean;
  /** The shards are ranges of validation's prefix-grouped copy of the input ('prefix'). */
  inputOrder?: InputOrder;
  /** Queues this event's webhook deliveries (one per matching endpoint of the batch's project) in the same write. */
  webhookEvent?: WebhookEvent;
}

export interface StoreCapabilities {
  /** Only one BESH process uses this store (a SQLite file): leases found at start are a dead process's. */
  readonly singleReplica: boolean;
  /** Claims skip rows that other replicas are claiming (FOR UPDATE SKIP LOCKED) instead of waiting. */
  readonly skipLocked: boolean;
  /** `subscribe` hears other processes' changes too (LISTEN/NOTIFY). */
  readonly crossProcessFeed: boolean;
}

/** Names a batch lease: writes that carry it succeed only while it is still held. */
export interface LeaseFence {
  batchId: string;
  owner: string;
  epoch: number;
}

/** Names a shard lease. */
export interface ShardFence extends LeaseFence {
  shardNo: number;
}

export interface BatchLease {
  batch: BatchRecord;
  epoch: number;
}

/** A shard as validation plans it: a range of the input holding `requests` request lines. */
export interface ShardPlan {
  shardNo: number;
  /** 1-based input line of the shard's first byte. */
  firstLine: number;
  requests: number;
  /** Byte range [startByte, endByte) of the input file. */
  startByte: number;
  endByte: number;
}

export type ShardState = 'pending' | 'leased' | 'done';
/** How a done shard ended: every line answered, or the rest written off by a cancel or the deadline. */
export type ShardOutcome = 'completed' | 'cancelled' | 'expired';

export interface ShardRecord extends ShardPlan {
  batchId: string;
  state: ShardState;
  owner: string | null;
  epoch: number;
  /** ms, by the store's clock. */
  leaseExpiresAt: number | null;
  completed: number;
  failed: number;
  usage: Usage;
  inFlight: number;
  outcome: ShardOutcome | null;
}

export interface ShardLease extends ShardRecord {
  /** The batch as it was when the shard was claimed. */
  batch: BatchRecord;
}

export interface ShardProgress {
  completed: number;
  failed: number;
  usage: Usage;
  inFlight: number;
}

export interface ShardRelease extends ShardFence {
  completed: number;
  failed: number;
  usage: Usage;
  /** null: back to pending (shutdown); else done. */
  outcome: ShardOutcome | null;
}

export interface ReplicaInfo {
  id: string;
  host: string;
  pid: number;
  /** ms since the epoch, by the replica's clock (shown, never compared). */
  startedAt: number;
  state: string;
  inFlight: number;
  workerLimit: number;
  version: string;
}

export interface ReplicaRecord extends ReplicaInfo {
  /** ms, by the store's clock. */
  heartbeatAt: number;
  /** Live shard and batch leases it holds. */
  leases: number;
}

export interface Heartbeat {
  replica: ReplicaInfo;
  leaseMs: number;
  shards: Array<ShardFence & ShardProgress>;
  batches: LeaseFence[];
}

export interface HeartbeatResult {
  shards: Array<{ batchId: string; shardNo: number; held: boolean; batchStatus: BatchStatus | null }>;
  batches: Array<{ batchId: string; held: boolean; batchStatus: BatchStatus | null }>;
}

export type ClaimNeed = 'validate' | 'run' | 'finalize';

export interface ClaimableBatch {
  id: string;
  project: string;
  status: BatchStatus;
  createdAt: number;
  expiresAt: number;
  /**
   * validate: validating with no live batch lease; run: in_progress or cancelling with a claimable
   * shard; finalize: in_progress, cancelling or finalizing with no shard left to do (none, for a batch
   * cancelled before validation ended) and no live batch lease.
   */
  need: ClaimNeed;
  /** Live shard leases of the batch, on every replica. */
  leasedShards: number;
}

export interface ClaimableWork {
  batches: ClaimableBatch[];
  /** Live leases (shard and batch) per project, on every replica; projects with none are absent. */
  leasesByProject: Record<string, number>;
}

export interface NewSegment {
  kind: ResultKind;
  seq: number;
  blobKey: string;
  /** Known when registered sealed (S3); null for a local segment registered before its first line. */
  lines: number | null;
  bytes: number | null;
}

export interface SegmentRecord extends NewSegment {
  batchId: string;
  shardNo: number;
  epoch: number;
  /** ms, by the store's clock. */
  createdAt: number;
}

export type StoreEvent =
  | { type: 'batch'; id: string; project: string; status: BatchStatus }
  | { type: 'batch_deleted'; id: string; project: string }
  | { type: 'work' };

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
