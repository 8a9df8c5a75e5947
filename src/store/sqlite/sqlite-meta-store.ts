import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import Database from 'better-sqlite3';

import {
  type ApiKeyRecord, assertTransitions, type BatchRecord, type BatchStatus, type FileRecord, type ListBatchesQuery, type ListFilesQuery, type Page,
  type ProjectLimits, type ProjectUsage,
} from '../../domain/index.js';
import type { ResultKind } from '../blob-keys.js';
import { LocalFeed } from '../local-feed.js';
import type {
  AnalyticsMinute, BatchesPageQuery, BatchLease, BatchQuota, BatchQuotaLimits, ClaimableWork, Heartbeat, HeartbeatResult, LeaseFence, MetaStore,
  NewSegment, ReplicaRecord, SegmentRecord, ShardFence, ShardLease, ShardRecord, ShardRelease, StoreCapabilities, StoreEvent, TransitionFields,
} from '../meta-store.js';
import { batchEvents, insertedBatchEvents } from '../sql/events.js';
import { toPage, whole } from '../sql/paging.js';
import { apiKeyToParams, batchToParams, fileToParams, rowToApiKey, rowToBatch, rowToFile } from '../sql/rows.js';
import { flag, transitionParams } from '../sql/transition.js';
import { prepareAnalytics } from './analytics-statements.js';
import { Leases } from './leases.js';
import { migrate } from './migrations.js';
import { Results } from './results.js';
import { settle } from './sqlite-db.js';
import { SqliteUploadStore } from './sqlite-upload-store.js';
import { SqliteWebhookStore } from './sqlite-webhook-store.js';
import { listCursor, prepareStatements, type SqliteTransitionParams, type Statements } from './statements.js';

/**
 * MetaStore on a local SQLite file (better-sqlite3), used by one process. Every method runs
 * synchronously and returns an already-settled promise; SQLite errors arrive as rejections, never
 * as synchronous throws. Statements are prepared once; a write that spans statements is one
 * IMMEDIATE transaction, and its events reach the in-process feed after it commits. The policy
 * (statuses, live reads, claims, the transition's columns) is `../sql/`, shared with PostgreSQL.
 */
export class SqliteMetaStore implements MetaStore {
  /** One process uses the file; claims never race, so there is nothing to skip; the feed is in-process. */
  readonly capabilities: StoreCapabilities = Object.freeze({ singleReplica: true, skipLocked: false, crossProcessFeed: false });
  readonly webhooks: SqliteWebhookStore;
  readonly uploads: SqliteUploadStore;
  readonly #db: Database.Database;
  readonly #s: Statements;
  readonly #a: ReturnType<typeof prepareAnalytics>;
  readonly #leases: Leases;
  readonly #results: Results;
  readonly #feed = new LocalFeed();
  /** The store's clock for leases (ms). */
  readonly #now: () => number;
  readonly #insertFileTx: Database.Transaction<(file: FileRecord, max: number | null) => boolean>;
  readonly #insertBatchTx: Database.Transaction<(batch: BatchRecord, quota: BatchQuota | null) => keyof BatchQuotaLimits | null>;
  readonly #transitionTx: Database.Transaction<(params: SqliteTransitionParams, fields: TransitionFields) => BatchRecord | null>;
  readonly #expireTx: Database.Transaction<(at: number) => BatchRecord[]>;

  private constructor(db: Database.Database, now: () => number) {
    this.#db = db;
    this.#now = now;
    const s = prepareStatements(db);
    this.#s = s;
    const liveBatch = (id: string): BatchRecord | null => this.#liveBatch(id);
    this.#a = prepareAnalytics(db, now);
    this.#leases = new Leases(db, now, this.#feed, liveBatch);
    this.#results = new Results(db, now, this.#feed, liveBatch);
    this.webhooks = new SqliteWebhookStore(db, now);
    this.uploads = new SqliteUploadStore(db);

    this.#insertFileTx = db.transaction((file, max) => {
      if (max !== null && (s.projects.storedBytes.get({ project: file.project }) ?? 0) + file.bytes > max) return false;
      s.files.insert.run(fileToParams(file));
      return true;
    });
    this.#insertBatchTx = db.transaction((batch, q) => {
      const project = { project: batch.project };
      if (q?.maxActiveBatches != null && (s.projects.activeBatches.get(project) ?? 0) + 1 > q.maxActiveBatches) return 'maxActiveBatches';
      if (q?.maxQueuedRequests != null && (s.projects.queuedRequests.get(project) ?? 0) + q.requests > q.maxQueuedRequests) return 'maxQueuedRequests';
      s.batches.insert.run(batchToParams(batch));
      return null;
    });
    // The compare-and-set, then what the same write records: result files, webhook deliveries, shards.
    this.#transitionTx = db.transaction((params, fields) => {
      if (s.batches.transition.get(params) === undefined) return null;
      for (const f of fields.insertFiles ?? []) s.files.insert.run(fileToParams(f));
      if (fields.webhookEvent) this.webhooks.queue(fields.webhookEvent);
      for (const p of fields.insertShards ?? []) {
        s.batches.insertShard.run({ batch_id: params.id, shard_no: p.shardNo, first_line: p.firstLine, requests: p.requests, start_byte: p.startByte, end_byte: p.endByte });
      }
      // Read live once its shards exist.
      return this.#liveBatch(params.id);
    });
    this.#expireTx = db.transaction((at) => {
      const ids = this.#leases.expireUnclaimed(at);
      // Webhooks: the expired batches' deliveries are queued here, in the same write.
      for (const id of ids) this.webhooks.queueTerminal(id, 'expired', at);
      return ids.flatMap((id) => this.#liveBatch(id) ?? []);
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
      const row = this.#s.files.get.get(id);
      return row === undefined ? null : rowToFile(row);
    });
  }

  listFiles(q: ListFilesQuery): Promise<Page<FileRecord>> {
    return settle(() => {
      const asc = q.order === 'asc';
      const f = this.#s.files;
      const cursor = listCursor(f.seq, q, asc, this.#now());
      if (cursor === null) return { data: [], hasMore: false };
      const rows =
        q.purpose === undefined ? (asc ? f.listAsc : f.listDesc).all(cursor) : (asc ? f.listByPurposeAsc : f.listByPurposeDesc).all({ ...cursor, purpose: q.purpose });
      return toPage(rows, cursor.limit - 1, rowToFile);
    });
  }

  deleteFile(id: string): Promise<boolean> {
    return settle(() => this.#s.files.delete.run(id).changes > 0);
  }

  listExpiredFiles(now: number, limit: number): Promise<FileRecord[]> {
    return settle(() => this.#s.files.listExpired.all({ now, limit: whole(limit) }).map(rowToFile));
  }

  deleteExpiredFile(id: string, now: number): Promise<boolean> {
    return settle(() => this.#s.files.deleteExpired.run({ id, now }).changes > 0);
  }

  bytesByPurpose(project?: string): Promise<Record<string, number>> {
    return settle(() => Object.fromEntries(this.#s.files.bytesByPurpose.all({ project: project ?? null }).map((r) => [r.purpose, r.bytes])));
  }

  // ── batches ────────────────────────────────────────────────────────────────────────────────

  insertBatch(batch: BatchRecord, quota?: BatchQuota): Promise<keyof BatchQuotaLimits | null> {
    return settle(() => {
      const refused = this.#insertBatchTx.immediate(batch, quota ?? null);
      if (refused === null) this.#emit(insertedBatchEvents(batch));
      return refused;
    });
  }

  getBatch(id: string): Promise<BatchRecord | null> {
    return settle(() => this.#liveBatch(id));
  }

  listBatches(q: ListBatchesQuery): Promise<Page<BatchRecord>> {
    return settle(() => {
      const cursor = listCursor(this.#s.batches.seq, q, false, this.#now());
      if (cursor === null) return { data: [], hasMore: false };
      return toPage(this.#s.batches.listDesc.all(cursor), cursor.limit - 1, rowToBatch);
    });
  }

  isInputOfUnfinishedBatch(fileId: string): Promise<boolean> {
    return settle(() => this.#s.batches.isInputOfUnfinished.get(fileId) !== undefined);
  }

  countBatchesByStatus(project?: string): Promise<Partial<Record<BatchStatus, number>>> {
    return settle(() => countsByStatus(this.#s.batches.countByStatus.all({ project: project ?? null })));
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
      const batch = this.#transitionTx.immediate({ ...transitionParams(id, to, at, fields, fence), from: JSON.stringify(from) }, fields);
      if (batch !== null) this.#emit(batchEvents(batch, to));
      return batch;
    });
  }

  deleteBatch(id: string): Promise<BatchRecord | null> {
    return settle(() => this.#results.deleteBatch(id));
  }

  // ── leases ─────────────────────────────────────────────────────────────────────────────────

  listClaimable(limit: number): Promise<ClaimableWork> {
    return settle(() => this.#leases.listClaimable(limit));
  }

  claimBatch(id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]): Promise<BatchLease | null> {
    return settle(() => this.#leases.claimBatch(id, owner, leaseMs, from));
  }

  releaseBatch(fence: LeaseFence): Promise<boolean> {
    return settle(() => this.#leases.releaseBatch(fence));
  }

  claimShard(batchId: string, owner: string, leaseMs: number): Promise<ShardLease | null> {
    return settle(() => this.#leases.claimShard(batchId, owner, leaseMs));
  }

  heartbeat(h: Heartbeat): Promise<HeartbeatResult> {
    return settle(() => this.#leases.heartbeat(h));
  }

  releaseShard(r: ShardRelease): Promise<{ held: boolean; remaining: number }> {
    return settle(() => this.#leases.releaseShard(r));
  }

  listShards(batchId: string): Promise<ShardRecord[]> {
    return settle(() => this.#leases.listShards(batchId));
  }

  releaseAllLeases(): Promise<number> {
    return settle(() => this.#leases.releaseAll());
  }

  /** One transaction: the due batches move to expired, their webhook deliveries are queued, and they are read live. */
  expireUnclaimed(now: number): Promise<BatchRecord[]> {
    return settle(() => {
      const expired = this.#expireTx.immediate(now);
      for (const b of expired) this.#emit(batchEvents(b, b.status));
      return expired;
    });
  }

  listQueuedBatches(project: string | undefined, limit: number): Promise<Array<{ id: string; project: string }>> {
    return settle(() => this.#leases.listQueued(project, limit));
  }

  // ── segments, replicas, deletion ───────────────────────────────────────────────────────────

  addSegment(fence: ShardFence, seg: NewSegment): Promise<boolean> {
    return settle(() => this.#results.addSegment(fence, seg));
  }

  sealSegment(fence: ShardFence, blobKey: string, lines: number, bytes: number): Promise<boolean> {
    return settle(() => this.#results.sealSegment(fence, blobKey, lines, bytes));
  }

  listSegments(batchId: string, q?: { shardNo?: number; kind?: ResultKind }): Promise<SegmentRecord[]> {
    return settle(() => this.#results.listSegments(batchId, q));
  }

  deleteSegments(batchId: string): Promise<number> {
    return settle(() => this.#results.deleteSegments(batchId));
  }

  inFlightByProject(): Promise<Record<string, number>> {
    return settle(() => this.#leases.inFlightByProject());
  }

  listReplicas(withinMs: number): Promise<ReplicaRecord[]> {
    return settle(() => this.#results.listReplicas(withinMs));
  }

  pruneReplicas(olderThanMs: number): Promise<number> {
    return settle(() => this.#results.pruneReplicas(olderThanMs));
  }

  listTombstones(limit: number): Promise<Array<{ id: string; project: string; deletedAt: number; liveLeases: number }>> {
    return settle(() => this.#results.listTombstones(limit));
  }

  purgeBatch(id: string): Promise<void> {
    return settle(() => this.#results.purgeBatch(id));
  }

  // ── change feed ────────────────────────────────────────────────────────────────────────────

  subscribe(listener: (e: StoreEvent) => void): () => void {
    return this.#feed.subscribe(listener);
  }

  // ── dashboard and analytics ────────────────────────────────────────────────────────────────

  listBatchesPage(q: BatchesPageQuery): Promise<{ data: BatchRecord[]; total: number }> {
    return settle(() => this.#a.batchesPage(q));
  }

  countBatchesCreatedSince(since: number, project?: string): Promise<Partial<Record<BatchStatus, number>>> {
    return settle(() => countsByStatus(this.#a.countCreatedSince(since, project)));
  }

  addAnalyticsMinutes(rows: readonly AnalyticsMinute[]): Promise<void> {
    return settle(() => this.#a.addMinutes(rows));
  }

  listAnalyticsMinutes(from: number, to: number, project?: string): Promise<AnalyticsMinute[]> {
    return settle(() => this.#a.listMinutes(from, to, project));
  }

  pruneAnalyticsMinutes(before: number): Promise<number> {
    return settle(() => this.#a.pruneMinutes(before));
  }

  // ── projects and keys ──────────────────────────────────────────────────────────────────────

  projectUsage(project: string): Promise<ProjectUsage> {
    return settle(() => {
      const p = { project };
      const s = this.#s.projects;
      return { storedBytes: s.storedBytes.get(p) ?? 0, activeBatches: s.activeBatches.get(p) ?? 0, queuedRequests: s.queuedRequests.get(p) ?? 0 };
    });
  }

  storedBytesByProject(): Promise<Record<string, number>> {
    return settle(() => Object.fromEntries(this.#s.projects.storedBytesByProject.all().map((r) => [r.project, r.bytes])));
  }

  listProjects(): Promise<string[]> {
    return settle(() => this.#s.projects.list.all());
  }

  getProjectLimits(project: string): Promise<ProjectLimits> {
    return settle(() => {
      const r = this.#s.projects.getLimits.get(project);
      return { maxStoredBytes: r?.max_stored_bytes ?? null, maxActiveBatches: r?.max_active_batches ?? null, maxQueuedRequests: r?.max_queued_requests ?? null };
    });
  }

  setProjectLimits(project: string, limits: Partial<ProjectLimits>): Promise<void> {
    return settle(() => {
      this.#s.projects.setLimits.run({
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
      this.#s.keys.insert.run(apiKeyToParams(key));
    });
  }

  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    return settle(() => {
      const row = this.#s.keys.byHash.get(hash);
      return row === undefined ? null : rowToApiKey(row);
    });
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    return settle(() => this.#s.keys.list.all().map(rowToApiKey));
  }

  revokeApiKey(id: string, at: number): Promise<boolean> {
    return settle(() => this.#s.keys.revoke.run({ id, at }).changes > 0);
  }

  countApiKeys(): Promise<number> {
    return settle(() => this.#s.keys.count.get() ?? 0);
  }

  touchApiKey(id: string, at: number): Promise<void> {
    return settle(() => {
      this.#s.keys.touch.run({ id, at });
    });
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.#db.open) this.#db.close();
    });
  }

  #liveBatch(id: string): BatchRecord | null {
    const row = this.#s.batches.get.get({ id, now: this.#now() });
    return row === undefined ? null : rowToBatch(row);
  }

  #emit(events: readonly StoreEvent[]): void {
    for (const e of events) this.#feed.emit(e);
  }
}

function countsByStatus(rows: Array<{ status: string; n: number }>): Partial<Record<BatchStatus, number>> {
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
