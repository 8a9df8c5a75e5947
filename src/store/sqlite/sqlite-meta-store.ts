import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import Database from 'better-sqlite3';

import {
  type ApiKeyRecord,
  assertTransitions,
  BATCH_STATUSES,
  type BatchRecord,
  type BatchStatus,
  coerceError,
  type FileRecord,
  isTerminal,
  type ListBatchesQuery,
  type ListFilesQuery,
  type Page,
  type ProjectLimits,
  type ProjectUsage,
  type RequestCounts,
  type Usage,
} from '../../domain/index.js';
import type { ResultKind } from '../blob-keys.js';
import { LocalFeed } from '../local-feed.js';
import type {
  AnalyticsMinute,
  BatchesPageQuery,
  BatchLease,
  BatchQuota,
  BatchQuotaLimits,
  ClaimableWork,
  Heartbeat,
  HeartbeatResult,
  LeaseFence,
  MetaStore,
  NewSegment,
  ReplicaRecord,
  SegmentRecord,
  ShardFence,
  ShardLease,
  ShardPlan,
  ShardRecord,
  ShardRelease,
  StoreCapabilities,
  StoreEvent,
  TransitionFields,
} from '../meta-store.js';
import {
  type ApiKeyRow,
  apiKeyToParams,
  type BatchParams,
  type BatchRow,
  batchToParams,
  type FileParams,
  type FileRow,
  fileToParams,
  rowToApiKey,
  rowToBatch,
  rowToFile,
  toJson,
} from '../sql/rows.js';
import type { WebhookEvent } from '../webhook-store.js';
import { prepareAnalytics } from './analytics-statements.js';
import { prepareLeases } from './lease-statements.js';
import { migrate } from './migrations.js';
import { SqliteUploadStore } from './sqlite-upload-store.js';
import { SqliteWebhookStore } from './sqlite-webhook-store.js';

/** The column stamped with `at` when a batch enters each status (`validating` has none). */
const TIMESTAMP_COLUMN: Record<BatchStatus, string | null> = {
  validating: null,
  in_progress: 'in_progress_at',
  finalizing: 'finalizing_at',
  completed: 'completed_at',
  failed: 'failed_at',
  expired: 'expired_at',
  cancelling: 'cancelling_at',
  cancelled: 'cancelled_at',
};

const UNFINISHED_SQL = sqlList(BATCH_STATUSES.filter((s) => !isTerminal(s)));

/** Stored columns of `batches` that the live read passes through unchanged. */
const BATCH_PLAIN_COLUMNS = [
  'seq', 'id', 'project', 'input_file_id', 'endpoint', 'completion_window', 'status', 'model', 'metadata', 'errors',
  'output_file_id', 'error_file_id', 'created_at', 'in_progress_at', 'expires_at', 'finalizing_at', 'completed_at',
  'failed_at', 'expired_at', 'cancelling_at', 'cancelled_at', 'request_total', 'output_expires_after',
  'lease_owner', 'lease_epoch', 'lease_expires_at',
];
/** Batch column → the shard column summed over an unfinished batch's shards. */
const BATCH_LIVE_COLUMNS: Record<string, string> = {
  request_completed: 'completed',
  request_failed: 'failed',
  input_tokens: 'input_tokens',
  cached_tokens: 'cached_tokens',
  output_tokens: 'output_tokens',
  reasoning_tokens: 'reasoning_tokens',
  total_tokens: 'total_tokens',
};

/**
 * The select list of a live batch read (alias `b`; binds `@now`): while a batch is unfinished,
 * its counters are the sums over its shards (a batch with no shard keeps its own), and
 * `in_flight` sums its live shard leases.
 */
const LIVE_BATCH_SELECT = [
  ...BATCH_PLAIN_COLUMNS.map((c) => `b.${c}`),
  ...Object.entries(BATCH_LIVE_COLUMNS).map(
    ([col, shardCol]) =>
      `COALESCE(CASE WHEN b.status IN (${UNFINISHED_SQL}) THEN (SELECT SUM(s.${shardCol}) FROM batch_shards s WHERE s.batch_id = b.id) END, b.${col}) AS ${col}`,
  ),
  `CASE WHEN b.status IN (${UNFINISHED_SQL}) THEN COALESCE((SELECT SUM(s.in_flight) FROM batch_shards s WHERE s.batch_id = b.id AND s.state = 'leased' AND s.lease_expires_at > @now), 0) ELSE 0 END AS in_flight`,
].join(', ');

/** Larger than any `seq`: the cursor of a descending list that starts at the top. */
const SEQ_TOP = Number.MAX_SAFE_INTEGER;

interface CountsParams {
  request_total: number;
  request_completed: number;
  request_failed: number;
  input_tokens: number;
  cached_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
}

/** Named parameters of the single compare-and-set UPDATE; `set_*` are 0/1 flags (SQLite has no booleans). */
interface TransitionParams extends CountsParams {
  id: string;
  from: string; // JSON array of statuses
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
  set_usage: number;
  release_lease: number;
  fence_owner: string | null;
  fence_epoch: number;
}

interface CursorParams {
  after_seq: number;
  limit: number;
  project: string | null;
  now: number;
}

type Stmt<P, R = unknown> = Database.Statement<[P], R>;
type SeqLookup = Stmt<{ id: string; project: string | null }, number>;

interface LimitRow {
  max_stored_bytes: number | null;
  max_active_batches: number | null;
  max_queued_requests: number | null;
}

/**
 * MetaStore on a local SQLite file (better-sqlite3). Every method runs synchronously and returns
 * an already-settled promise; SQLite errors arrive as rejections, never as synchronous throws.
 */
export class SqliteMetaStore implements MetaStore {
  /** One process uses the file; claims never race, so there is nothing to skip; the feed is in-process. */
  readonly capabilities: StoreCapabilities = Object.freeze({ singleReplica: true, skipLocked: false, crossProcessFeed: false });
  readonly webhooks: SqliteWebhookStore;
  readonly uploads: SqliteUploadStore;
  readonly #db: Database.Database;
  readonly #s: ReturnType<typeof prepareStatements>;
  readonly #a: ReturnType<typeof prepareAnalytics>;
  readonly #l: ReturnType<typeof prepareLeases>;
  readonly #feed = new LocalFeed();
  /** The store's clock for leases (ms). */
  readonly #now: () => number;
  readonly #transitionTx: Database.Transaction<
    (params: TransitionParams & { now: number }, files: readonly FileRecord[], shards: readonly ShardPlan[], event: WebhookEvent | undefined) => BatchRow | null
  >;
  readonly #insertFileTx: Database.Transaction<(file: FileRecord, max: number | null) => boolean>;
  readonly #insertBatchTx: Database.Transaction<(batch: BatchRecord, quota: BatchQuota | null) => keyof BatchQuotaLimits | null>;
  readonly #deleteBatchTx: Database.Transaction<(id: string) => BatchRecord | null>;

  private constructor(db: Database.Database, now: () => number) {
    this.#db = db;
    this.#now = now;
    this.#s = prepareStatements(db);
    this.#a = prepareAnalytics(db, LIVE_BATCH_SELECT);
    this.#l = prepareLeases(db);
    this.webhooks = new SqliteWebhookStore(db);
    this.uploads = new SqliteUploadStore(db);
    const s = this.#s;
    this.#transitionTx = db.transaction((params: TransitionParams & { now: number }, files: readonly FileRecord[], shards: readonly ShardPlan[], event: WebhookEvent | undefined): BatchRow | null => {
      if (s.transition.get(params) === undefined) return null;
      for (const f of files) s.insertFile.run(fileToParams(f));
      if (event) this.webhooks.queue(event);
      for (const p of shards) s.insertShard.run({ batch_id: params.id, ...shardParams(p) });
      return s.getBatch.get({ id: params.id, now: params.now }) ?? null;
    });
    this.#insertFileTx = db.transaction((file: FileRecord, max: number | null): boolean => {
      if (max !== null && (s.storedBytes.get(file.project) ?? 0) + file.bytes > max) return false;
      s.insertFile.run(fileToParams(file));
      return true;
    });
    this.#insertBatchTx = db.transaction((batch, q) => {
      if (q?.maxActiveBatches != null && (s.activeBatches.get(batch.project) ?? 0) + 1 > q.maxActiveBatches) return 'maxActiveBatches';
      if (q?.maxQueuedRequests != null && (s.queuedRequests.get(batch.project) ?? 0) + q.requests > q.maxQueuedRequests) return 'maxQueuedRequests';
      s.insertBatch.run(batchToParams(batch));
      return null;
    });
    this.#deleteBatchTx = db.transaction((id: string): BatchRecord | null => {
      const b = this.#liveBatch(id);
      if (b === null) return null;
      for (const fileId of [b.outputFileId, b.errorFileId]) if (fileId !== null) s.deleteFile.run(fileId);
      s.deleteBatch.run(id);
      this.#l.tombstone(this.#now(), b.id, b.project);
      return b;
    });
  }

  /** Opens (creating it and its directory if needed) and migrates the database at `path`. `now` is the lease clock (ms; tests). */
  static open(path: string, opts: { now?: () => number } = {}): SqliteMetaStore {
    if (path !== ':memory:' && !path.startsWith('file:')) mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path, { timeout: 5000 });
    try {
      db.pragma('busy_timeout = 5000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteMetaStore(db, opts.now ?? Date.now);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  // ── files ──────────────────────────────────────────────────────────────────────────────────

  insertFile(file: FileRecord, maxStoredBytes: number | null = null): Promise<boolean> {
    return settle(() => this.#insertFileTx.immediate(file, maxStoredBytes));
  }

  getFile(id: string): Promise<FileRecord | null> {
    return settle(() => {
      const row = this.#s.getFile.get(id);
      return row === undefined ? null : rowToFile(row);
    });
  }

  listFiles(q: ListFilesQuery): Promise<Page<FileRecord>> {
    return settle(() => {
      const asc = q.order === 'asc';
      const cursor = this.#cursor(this.#s.fileSeq, q.after, asc, q.limit, q.project);
      if (cursor === null) return { data: [], hasMore: false };
      const rows =
        q.purpose === undefined
          ? (asc ? this.#s.listFilesAsc : this.#s.listFilesDesc).all(cursor)
          : (asc ? this.#s.listFilesByPurposeAsc : this.#s.listFilesByPurposeDesc).all({ ...cursor, purpose: q.purpose });
      return toPage(rows, cursor.limit - 1, rowToFile);
    });
  }

  deleteFile(id: string): Promise<boolean> {
    return settle(() => this.#s.deleteFile.run(id).changes > 0);
  }

  listExpiredFiles(now: number, limit: number): Promise<FileRecord[]> {
    return settle(() => this.#s.listExpiredFiles.all({ now, limit: Math.max(0, Math.floor(limit)) }).map(rowToFile));
  }

  deleteExpiredFile(id: string, now: number): Promise<boolean> {
    return settle(() => this.#s.deleteExpiredFile.run({ id, now }).changes > 0);
  }

  bytesByPurpose(project?: string): Promise<Record<string, number>> {
    return settle(() => Object.fromEntries(this.#s.bytesByPurpose.all({ project: project ?? null }).map((r) => [r.purpose, r.bytes])));
  }

  // ── batches ────────────────────────────────────────────────────────────────────────────────

  insertBatch(batch: BatchRecord, quota?: BatchQuota): Promise<keyof BatchQuotaLimits | null> {
    return settle(() => {
      const refused = this.#insertBatchTx.immediate(batch, quota ?? null);
      if (refused === null) {
        this.#feed.emit({ type: 'batch', id: batch.id, project: batch.project, status: batch.status });
        this.#feed.emit({ type: 'work' });
      }
      return refused;
    });
  }

  getBatch(id: string): Promise<BatchRecord | null> {
    return settle(() => this.#liveBatch(id));
  }

  listBatches(q: ListBatchesQuery): Promise<Page<BatchRecord>> {
    return settle(() => {
      const cursor = this.#cursor(this.#s.batchSeq, q.after, false, q.limit, q.project);
      if (cursor === null) return { data: [], hasMore: false };
      return toPage(this.#s.listBatchesDesc.all(cursor), cursor.limit - 1, rowToBatch);
    });
  }

  isInputOfUnfinishedBatch(fileId: string): Promise<boolean> {
    return settle(() => this.#s.isInputOfUnfinished.get(fileId) !== undefined);
  }

  deleteBatch(id: string): Promise<BatchRecord | null> {
    return settle(() => {
      const removed = this.#deleteBatchTx.immediate(id);
      if (removed) this.#feed.emit({ type: 'batch_deleted', id: removed.id, project: removed.project });
      return removed;
    });
  }

  countBatchesByStatus(project?: string): Promise<Partial<Record<BatchStatus, number>>> {
    return settle(
      () => Object.fromEntries(this.#s.countBatchesByStatus.all({ project: project ?? null }).map((r) => [r.status, r.n])) as Partial<Record<BatchStatus, number>>,
    );
  }

  transition(
    id: string,
    from: readonly BatchStatus[],
    to: BatchStatus,
    at: number,
    fields: TransitionFields = {},
    fence?: LeaseFence,
  ): Promise<BatchRecord | null> {
    return settle(() => {
      assertTransitions(from, to);
      if (from.length === 0) return null;
      if (fence !== undefined && fence.batchId !== id) throw new Error(`transition of ${id} fenced by the lease of ${fence.batchId}`);
      const row = this.#transitionTx.immediate(transitionParams(id, from, to, at, fields, fence, this.#now()), fields.insertFiles ?? [], fields.insertShards ?? [], fields.webhookEvent);
      if (row === null) return null;
      const b = rowToBatch(row);
      this.#feed.emit({ type: 'batch', id: b.id, project: b.project, status: b.status });
      if (to === 'in_progress' || to === 'cancelling') this.#feed.emit({ type: 'work' });
      return b;
    });
  }

  // ── leases ─────────────────────────────────────────────────────────────────────────────────

  listClaimable(limit: number): Promise<ClaimableWork> {
    return settle(() => this.#l.listClaimable(this.#now(), limit));
  }

  claimBatch(id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]): Promise<BatchLease | null> {
    return settle(() =>
      this.#db.transaction((): BatchLease | null => {
        const epoch = this.#l.claimBatch(this.#now(), id, owner, leaseMs, from);
        const batch = epoch === null ? null : this.#liveBatch(id);
        return epoch === null || batch === null ? null : { batch, epoch };
      }).immediate(),
    );
  }

  releaseBatch(fence: LeaseFence): Promise<boolean> {
    return settle(() => {
      const released = this.#l.releaseBatch(fence);
      if (released) this.#feed.emit({ type: 'work' });
      return released;
    });
  }

  claimShard(batchId: string, owner: string, leaseMs: number): Promise<ShardLease | null> {
    return settle(() =>
      this.#db.transaction((): ShardLease | null => {
        const shard = this.#l.claimShard(this.#now(), batchId, owner, leaseMs);
        const batch = shard === null ? null : this.#liveBatch(batchId);
        return shard === null || batch === null ? null : { ...shard, batch };
      }).immediate(),
    );
  }

  heartbeat(h: Heartbeat): Promise<HeartbeatResult> {
    return settle(() => this.#db.transaction(() => this.#l.heartbeat(this.#now(), h)).immediate());
  }

  releaseShard(r: ShardRelease): Promise<{ held: boolean; remaining: number }> {
    return settle(() => {
      const result = this.#db.transaction(() => this.#l.releaseShard(r)).immediate();
      if (result.held && r.outcome === null) this.#feed.emit({ type: 'work' });
      return result;
    });
  }

  listShards(batchId: string): Promise<ShardRecord[]> {
    return settle(() => this.#l.listShards(batchId));
  }

  releaseAllLeases(): Promise<number> {
    return settle(() => this.#db.transaction(() => this.#l.releaseAll()).immediate());
  }

  expireUnclaimed(now: number): Promise<BatchRecord[]> {
    return settle(() => {
      const expired = this.#db
        .transaction(() => this.#l.expireUnclaimed(this.#now(), now).flatMap((id) => this.#liveBatch(id) ?? []))
        .immediate();
      for (const b of expired) this.#feed.emit({ type: 'batch', id: b.id, project: b.project, status: b.status });
      return expired;
    });
  }

  listQueuedBatches(project: string | undefined, limit: number): Promise<Array<{ id: string; project: string }>> {
    return settle(() => this.#l.listQueued(this.#now(), project, limit));
  }

  addSegment(fence: ShardFence, seg: NewSegment): Promise<boolean> {
    return settle(() => this.#l.addSegment(this.#now(), fence, seg));
  }

  sealSegment(fence: ShardFence, blobKey: string, lines: number, bytes: number): Promise<boolean> {
    return settle(() => this.#l.sealSegment(fence, blobKey, lines, bytes));
  }

  listSegments(batchId: string, q: { shardNo?: number; kind?: ResultKind } = {}): Promise<SegmentRecord[]> {
    return settle(() => this.#l.listSegments(batchId, q.shardNo, q.kind));
  }

  deleteSegments(batchId: string): Promise<number> {
    return settle(() => this.#l.deleteSegments(batchId));
  }

  inFlightByProject(): Promise<Record<string, number>> {
    return settle(() => this.#l.inFlightByProject(this.#now()));
  }

  listReplicas(withinMs: number): Promise<ReplicaRecord[]> {
    return settle(() => this.#l.listReplicas(this.#now(), withinMs));
  }

  pruneReplicas(olderThanMs: number): Promise<number> {
    return settle(() => this.#l.pruneReplicas(this.#now(), olderThanMs));
  }

  listTombstones(limit: number): Promise<Array<{ id: string; project: string; deletedAt: number; liveLeases: number }>> {
    return settle(() => this.#l.listTombstones(this.#now(), limit));
  }

  purgeBatch(id: string): Promise<void> {
    return settle(() => this.#db.transaction(() => this.#l.purge(id)).immediate());
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    return this.#feed.subscribe(listener);
  }

  listBatchesPage(q: BatchesPageQuery): Promise<{ data: BatchRecord[]; total: number }> {
    return settle(() => {
      const params = {
        status: q.status ?? null,
        project: q.project ?? null,
        limit: Math.max(0, Math.floor(q.limit)),
        offset: Math.max(0, Math.floor(q.offset)),
        now: this.#now(),
      };
      const total = this.#a.countBatches.get({ status: params.status, project: params.project }) ?? 0;
      return { data: this.#a.batchesPage.all(params).map(rowToBatch), total };
    });
  }

  countBatchesCreatedSince(since: number, project?: string): Promise<Partial<Record<BatchStatus, number>>> {
    return settle(
      () =>
        Object.fromEntries(this.#a.countByStatus.all({ since, project: project ?? null }).map((r) => [r.status, r.n])) as Partial<Record<BatchStatus, number>>,
    );
  }

  addAnalyticsMinutes(rows: readonly AnalyticsMinute[]): Promise<void> {
    return settle(() => this.#a.addMinutes(rows));
  }

  listAnalyticsMinutes(from: number, to: number, project?: string): Promise<AnalyticsMinute[]> {
    return settle(() => this.#a.listMinutes(from, to, project));
  }

  pruneAnalyticsMinutes(before: number): Promise<number> {
    return settle(() => this.#a.pruneMinutes.run(before).changes);
  }

  // ── projects and keys ──────────────────────────────────────────────────────────────────────

  projectUsage(project: string): Promise<ProjectUsage> {
    return settle(() => ({
      storedBytes: this.#s.storedBytes.get(project) ?? 0,
      activeBatches: this.#s.activeBatches.get(project) ?? 0,
      queuedRequests: this.#s.queuedRequests.get(project) ?? 0,
    }));
  }

  storedBytesByProject(): Promise<Record<string, number>> {
    return settle(() => Object.fromEntries(this.#s.storedBytesByProject.all().map((r) => [r.project, r.bytes])));
  }

  listProjects(): Promise<string[]> {
    return settle(() => this.#s.listProjects.all());
  }

  getProjectLimits(project: string): Promise<ProjectLimits> {
    return settle(() => {
      const r = this.#s.getLimits.get(project);
      return { maxStoredBytes: r?.max_stored_bytes ?? null, maxActiveBatches: r?.max_active_batches ?? null, maxQueuedRequests: r?.max_queued_requests ?? null };
    });
  }

  setProjectLimits(project: string, limits: Partial<ProjectLimits>): Promise<void> {
    return settle(() => {
      this.#s.setLimits.run({
        project,
        set_bytes: flag(limits.maxStoredBytes),
        max_stored_bytes: limits.maxStoredBytes ?? null,
        set_active: flag(limits.maxActiveBatches),
        max_active_batches: limits.maxActiveBatches ?? null,
        set_queued: flag(limits.maxQueuedRequests),
        max_queued_requests: limits.maxQueuedRequests ?? null,
      });
    });
  }

  insertApiKey(key: ApiKeyRecord): Promise<void> {
    return settle(() => {
      this.#s.insertKey.run(apiKeyToParams(key));
    });
  }

  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    return settle(() => {
      const row = this.#s.keyByHash.get(hash);
      return row === undefined ? null : rowToApiKey(row);
    });
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    return settle(() => this.#s.listKeys.all().map(rowToApiKey));
  }

  revokeApiKey(id: string, at: number): Promise<boolean> {
    return settle(() => this.#s.revokeKey.run({ id, at }).changes > 0);
  }

  countApiKeys(): Promise<number> {
    return settle(() => this.#s.countKeys.get() ?? 0);
  }

  touchApiKey(id: string, at: number): Promise<void> {
    return settle(() => {
      this.#s.touchKey.run({ id, at });
    });
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.#db.open) this.#db.close();
    });
  }

  /**
   * Resolves a list cursor: the `seq` bound to start after, and the row count to fetch (one more
   * than the page so `hasMore` is exact). Null when `after` names no row: the page is empty.
   */
  #cursor(seqOf: SeqLookup, after: string | undefined, asc: boolean, limit: number, project: string | undefined): CursorParams | null {
    const pageSize = Math.max(0, Math.floor(limit));
    const p = project ?? null;
    const now = this.#now();
    if (after === undefined) return { after_seq: asc ? 0 : SEQ_TOP, limit: pageSize + 1, project: p, now };
    // A cursor naming another project's object is as unknown as a missing one.
    const seq = seqOf.get({ id: after, project: p });
    return seq === undefined ? null : { after_seq: seq, limit: pageSize + 1, project: p, now };
  }

  #liveBatch(id: string): BatchRecord | null {
    const row = this.#s.getBatch.get({ id, now: this.#now() });
    return row === undefined ? null : rowToBatch(row);
  }
}

function prepareStatements(db: Database.Database) {
  const unfinished = `status IN (${UNFINISHED_SQL})`;
  const stampAssignments = Object.entries(TIMESTAMP_COLUMN).flatMap(([status, c]) =>
    c === null ? [] : [`${c} = CASE WHEN @to = '${status}' THEN @at ELSE ${c} END`],
  );
  const optional = (column: string, flag: string, param = column): string =>
    `${column} = CASE WHEN @${flag} THEN @${param} ELSE ${column} END`;
  const counterColumns: (keyof CountsParams)[] = [
    'request_total',
    'request_completed',
    'request_failed',
    'input_tokens',
    'cached_tokens',
    'output_tokens',
    'reasoning_tokens',
    'total_tokens',
  ];
  const isCount = (c: keyof CountsParams): boolean => c.startsWith('request_');
  const inProject = '(@project IS NULL OR project = @project)';

  return {
    insertFile: db.prepare<FileParams>(
      `INSERT INTO files (id, filename, purpose, bytes, created_at, expires_at, blob_key, batch_id, project, lines)
       VALUES (@id, @filename, @purpose, @bytes, @created_at, @expires_at, @blob_key, @batch_id, @project, @lines)`,
    ),
    getFile: db.prepare<[string], FileRow>('SELECT * FROM files WHERE id = ?'),
    fileSeq: db.prepare<{ id: string; project: string | null }, number>(`SELECT seq FROM files WHERE id = @id AND ${inProject}`).pluck(),
    listFilesAsc: db.prepare<CursorParams, FileRow>(`SELECT * FROM files WHERE seq > @after_seq AND ${inProject} ORDER BY seq ASC LIMIT @limit`),
    listFilesDesc: db.prepare<CursorParams, FileRow>(`SELECT * FROM files WHERE seq < @after_seq AND ${inProject} ORDER BY seq DESC LIMIT @limit`),
    listFilesByPurposeAsc: db.prepare<CursorParams & { purpose: string }, FileRow>(
      `SELECT * FROM files WHERE purpose = @purpose AND seq > @after_seq AND ${inProject} ORDER BY seq ASC LIMIT @limit`,
    ),
    listFilesByPurposeDesc: db.prepare<CursorParams & { purpose: string }, FileRow>(
      `SELECT * FROM files WHERE purpose = @purpose AND seq < @after_seq AND ${inProject} ORDER BY seq DESC LIMIT @limit`,
    ),
    deleteFile: db.prepare<[string]>('DELETE FROM files WHERE id = ?'),
    listExpiredFiles: db.prepare<{ now: number; limit: number }, FileRow>(
      `SELECT * FROM files f
       WHERE f.expires_at IS NOT NULL AND f.expires_at <= @now
         AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = f.id AND b.${unfinished})
       ORDER BY f.expires_at ASC, f.seq ASC LIMIT @limit`,
    ),
    deleteExpiredFile: db.prepare<{ id: string; now: number }>(
      `DELETE FROM files
       WHERE id = @id AND expires_at IS NOT NULL AND expires_at <= @now
         AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = files.id AND b.${unfinished})`,
    ),
    bytesByPurpose: db.prepare<{ project: string | null }, { purpose: string; bytes: number }>(
      `SELECT purpose, COALESCE(SUM(bytes), 0) AS bytes FROM files WHERE ${inProject} GROUP BY purpose`,
    ),

    insertBatch: db.prepare<BatchParams>(
      `INSERT INTO batches (
         id, project, input_file_id, endpoint, completion_window, status, model, metadata, errors,
         output_file_id, error_file_id, created_at, in_progress_at, expires_at, finalizing_at,
         completed_at, failed_at, expired_at, cancelling_at, cancelled_at,
         request_total, request_completed, request_failed,
         input_tokens, cached_tokens, output_tokens, reasoning_tokens, total_tokens, output_expires_after
       ) VALUES (
         @id, @project, @input_file_id, @endpoint, @completion_window, @status, @model, @metadata, @errors,
         @output_file_id, @error_file_id, @created_at, @in_progress_at, @expires_at, @finalizing_at,
         @completed_at, @failed_at, @expired_at, @cancelling_at, @cancelled_at,
         @request_total, @request_completed, @request_failed,
         @input_tokens, @cached_tokens, @output_tokens, @reasoning_tokens, @total_tokens, @output_expires_after
       )`,
    ),
    getBatch: db.prepare<{ id: string; now: number }, BatchRow>(`SELECT ${LIVE_BATCH_SELECT} FROM batches b WHERE b.id = @id`),
    batchSeq: db.prepare<{ id: string; project: string | null }, number>(`SELECT seq FROM batches WHERE id = @id AND ${inProject}`).pluck(),
    listBatchesDesc: db.prepare<CursorParams, BatchRow>(
      `SELECT ${LIVE_BATCH_SELECT} FROM batches b WHERE b.seq < @after_seq AND (@project IS NULL OR b.project = @project) ORDER BY b.seq DESC LIMIT @limit`,
    ),
    isInputOfUnfinished: db.prepare<[string], number>(`SELECT 1 FROM batches WHERE ${unfinished} AND input_file_id = ? LIMIT 1`).pluck(),
    deleteBatch: db.prepare<[string]>('DELETE FROM batches WHERE id = ?'),
    countBatchesByStatus: db.prepare<{ project: string | null }, { status: string; n: number }>(
      `SELECT status, COUNT(*) AS n FROM batches WHERE ${inProject} GROUP BY status`,
    ),

    // Quotas and projects.
    storedBytes: db.prepare<[string], number>('SELECT COALESCE(SUM(bytes), 0) FROM files WHERE project = ?').pluck(),
    storedBytesByProject: db.prepare<[], { project: string; bytes: number }>('SELECT project, SUM(bytes) AS bytes FROM files GROUP BY project'),
    activeBatches: db.prepare<[string], number>(`SELECT COUNT(*) FROM batches WHERE project = ? AND ${unfinished}`).pluck(),
    // Unanswered requests: a running batch's remaining count (live, over its shards); a batch
    // still validating, its file's lines.
    queuedRequests: db
      .prepare<[string], number>(
        `SELECT COALESCE(SUM(CASE WHEN b.request_total > 0
             THEN b.request_total - COALESCE((SELECT SUM(s.completed + s.failed) FROM batch_shards s WHERE s.batch_id = b.id), b.request_completed + b.request_failed)
             ELSE COALESCE(f.lines, 0) END), 0)
         FROM batches b LEFT JOIN files f ON f.id = b.input_file_id
         WHERE b.project = ? AND b.status IN ('validating', 'in_progress')`,
      )
      .pluck(),
    listProjects: db
      .prepare<[], string>(
        `SELECT project FROM files UNION SELECT project FROM batches UNION SELECT project FROM api_keys
         UNION SELECT project FROM project_limits ORDER BY 1`,
      )
      .pluck(),
    getLimits: db.prepare<[string], LimitRow>('SELECT max_stored_bytes, max_active_batches, max_queued_requests FROM project_limits WHERE project = ?'),
    setLimits: db.prepare<{
      project: string;
      set_bytes: number;
      max_stored_bytes: number | null;
      set_active: number;
      max_active_batches: number | null;
      set_queued: number;
      max_queued_requests: number | null;
    }>(
      `INSERT INTO project_limits (project, max_stored_bytes, max_active_batches, max_queued_requests)
       VALUES (@project, CASE WHEN @set_bytes THEN @max_stored_bytes END, CASE WHEN @set_active THEN @max_active_batches END,
               CASE WHEN @set_queued THEN @max_queued_requests END)
       ON CONFLICT (project) DO UPDATE SET
         max_stored_bytes = CASE WHEN @set_bytes THEN @max_stored_bytes ELSE max_stored_bytes END,
         max_active_batches = CASE WHEN @set_active THEN @max_active_batches ELSE max_active_batches END,
         max_queued_requests = CASE WHEN @set_queued THEN @max_queued_requests ELSE max_queued_requests END`,
    ),
    insertKey: db.prepare<Omit<ApiKeyRow, 'seq'>>(
      `INSERT INTO api_keys (id, project, admin, name, hash, prefix, created_at, revoked_at, last_used_at)
       VALUES (@id, @project, @admin, @name, @hash, @prefix, @created_at, @revoked_at, @last_used_at)`,
    ),
    keyByHash: db.prepare<[string], ApiKeyRow>('SELECT * FROM api_keys WHERE hash = ?'),
    listKeys: db.prepare<[], ApiKeyRow>('SELECT * FROM api_keys ORDER BY seq ASC'),
    revokeKey: db.prepare<{ id: string; at: number }>('UPDATE api_keys SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL'),
    countKeys: db.prepare<[], number>('SELECT COUNT(*) FROM api_keys').pluck(),
    touchKey: db.prepare<{ id: string; at: number }>('UPDATE api_keys SET last_used_at = @at WHERE id = @id'),

    // One compare-and-set UPDATE for every transition: which columns change is decided by the
    // bound flags, so the statement is prepared once.
    transition: db.prepare<TransitionParams, BatchRow>(
      `UPDATE batches SET
         status = @to,
         ${stampAssignments.join(',\n         ')},
         ${optional('errors', 'set_errors')},
         ${optional('output_file_id', 'set_output_file_id')},
         ${optional('error_file_id', 'set_error_file_id')},
         ${optional('model', 'set_model')},
         ${counterColumns.map((c) => optional(c, isCount(c) ? 'set_counts' : 'set_usage')).join(',\n         ')},
         lease_owner = CASE WHEN @release_lease THEN NULL ELSE lease_owner END,
         lease_expires_at = CASE WHEN @release_lease THEN NULL ELSE lease_expires_at END
       WHERE id = @id AND status IN (SELECT value FROM json_each(@from))
         AND (@fence_owner IS NULL OR (lease_owner = @fence_owner AND lease_epoch = @fence_epoch))
       RETURNING id`,
    ),
    insertShard: db.prepare<{ batch_id: string; shard_no: number; first_line: number; requests: number; start_byte: number; end_byte: number }>(
      `INSERT INTO batch_shards (batch_id, shard_no, first_line, requests, start_byte, end_byte)
       VALUES (@batch_id, @shard_no, @first_line, @requests, @start_byte, @end_byte)`,
    ),
  };
}

/** A `set_*` parameter: 1 when the field was given (undefined = keep the column's value). */
const flag = (v: unknown): number => (v === undefined ? 0 : 1);

function transitionParams(id: string, from: readonly BatchStatus[], to: BatchStatus, at: number, f: TransitionFields, fence: LeaseFence | undefined, now: number): TransitionParams & { now: number } {
  return {
    now,
    release_lease: f.releaseLease === true ? 1 : 0,
    fence_owner: fence?.owner ?? null,
    fence_epoch: fence?.epoch ?? 0,
    id,
    from: JSON.stringify(from),
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
    set_usage: flag(f.usage),
    ...countsParams(f.requestCounts ?? { total: 0, completed: 0, failed: 0 }),
    ...usageParams(f.usage ?? { inputTokens: 0, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 }),
  };
}

function shardParams(p: ShardPlan): { shard_no: number; first_line: number; requests: number; start_byte: number; end_byte: number } {
  return { shard_no: p.shardNo, first_line: p.firstLine, requests: p.requests, start_byte: p.startByte, end_byte: p.endByte };
}

function countsParams(c: RequestCounts): Pick<CountsParams, 'request_total' | 'request_completed' | 'request_failed'> {
  return { request_total: c.total, request_completed: c.completed, request_failed: c.failed };
}

function usageParams(u: Usage): Omit<CountsParams, 'request_total' | 'request_completed' | 'request_failed'> {
  return {
    input_tokens: u.inputTokens,
    cached_tokens: u.cachedTokens,
    output_tokens: u.outputTokens,
    reasoning_tokens: u.reasoningTokens,
    total_tokens: u.totalTokens,
  };
}

function toPage<R, T>(rows: R[], limit: number, map: (row: R) => T): Page<T> {
  return { data: rows.slice(0, limit).map(map), hasMore: rows.length > limit };
}

/** A SQL list of string literals from constant identifiers (never from client input). */
function sqlList(values: readonly string[]): string {
  for (const v of values) if (!/^[a-z_]+$/.test(v)) throw new Error(`Not a plain identifier: ${v}`);
  return values.map((v) => `'${v}'`).join(', ');
}

/** Runs synchronous work as a settled promise: a throw becomes a rejection. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(coerceError(err));
  }
}
