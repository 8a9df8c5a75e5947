import pg from 'pg';

import {
  type ApiKeyRecord, assertTransitions, type BatchRecord, type BatchStatus, type FileRecord, type ListBatchesQuery, type ListFilesQuery, type Page,
  type ProjectLimits, type ProjectUsage,
} from '../../domain/index.js';
import type { ResultKind } from '../blob-keys.js';
import type {
  AnalyticsMinute, BatchesPageQuery, BatchLease, BatchQuota, BatchQuotaLimits, ClaimableWork, Heartbeat, HeartbeatResult, LeaseFence, MetaStore,
  NewSegment, ReplicaRecord, SegmentRecord, ShardFence, ShardLease, ShardRecord, ShardRelease, StoreCapabilities, StoreEvent, TransitionFields,
} from '../meta-store.js';
import { batchEvents, insertedBatchEvents } from '../sql/events.js';
import { toPage, whole } from '../sql/paging.js';
import { apiKeyToParams, batchToParams, fileToParams, rowToApiKey, rowToBatch, rowToFile } from '../sql/rows.js';
import { flag, transitionParams } from '../sql/transition.js';
import { addMinutes, ANALYTICS, listMinutes } from './analytics-statements.js';
import { ChangeFeed } from './change-feed.js';
import { Leases } from './leases.js';
import { migrate } from './migrations.js';
import { Db, LOCK, PG_TYPES, transaction } from './pg-db.js';
import { PostgresUploadStore } from './postgres-upload-store.js';
import { PostgresWebhookStore } from './postgres-webhook-store.js';
import { Results } from './results.js';
import { BATCHES, FILES, KEYS, PROJECTS } from './statements.js';

export interface PostgresStoreOptions {
  /** Connections in the pool (default 10); the change feed holds one more. */
  poolSize?: number;
  /** `application_name` of the store's connections (default `besh`; the feed's gets `-listen`). */
  applicationName?: string;
  /** Errors no caller can receive: a lost idle or LISTEN connection, a throwing listener. */
  onError?: (err: Error) => void;
}

/**
 * MetaStore on PostgreSQL (node-postgres), shared by every replica of a cluster. Checks that span
 * rows run in one transaction under an advisory lock (READ COMMITTED alone would let two replicas
 * both pass a quota); claims skip rows other replicas hold (FOR UPDATE SKIP LOCKED); lease times
 * are the database server's clock. Changes reach every replica through LISTEN/NOTIFY.
 */
export class PostgresMetaStore implements MetaStore {
  readonly capabilities: StoreCapabilities = Object.freeze({ singleReplica: false, skipLocked: true, crossProcessFeed: true });
  readonly webhooks: PostgresWebhookStore;
  readonly uploads: PostgresUploadStore;
  readonly #pool: pg.Pool;
  readonly #db: Db;
  readonly #feed: ChangeFeed;
  readonly #leases: Leases;
  readonly #results: Results;
  #closing: Promise<void> | null = null;

  private constructor(pool: pg.Pool, feed: ChangeFeed) {
    this.#pool = pool;
    this.#db = new Db(pool);
    this.#feed = feed;
    this.#leases = new Leases(pool);
    this.#results = new Results(pool);
    this.webhooks = new PostgresWebhookStore(pool);
    this.uploads = new PostgresUploadStore(pool);
  }

  /** Connects, migrates the database (under a session advisory lock) and starts the change feed. */
  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresMetaStore> {
    const onError = opts.onError ?? (() => undefined);
    const app = opts.applicationName ?? 'besh';
    const pool = new pg.Pool({ connectionString: url, types: PG_TYPES, application_name: app, max: opts.poolSize ?? 10 });
    // An idle pooled connection that dies emits here; without a listener it would crash the process.
    pool.on('error', onError);
    const feed = new ChangeFeed({ connectionString: url, types: PG_TYPES, application_name: `${app}-listen` }, onError);
    try {
      await migrate(pool);
      await feed.start();
      return new PostgresMetaStore(pool, feed);
    } catch (err) {
      await feed.close();
      await pool.end();
      throw err;
    }
  }

  // ── files ──────────────────────────────────────────────────────────────────────────────────

  async insertFile(file: FileRecord, maxStoredBytes: number | null = null): Promise<boolean> {
    if (maxStoredBytes === null) {
      await this.#db.run(FILES.insert, fileToParams(file));
      return true;
    }
    return transaction(this.#pool, async (db) => {
      await db.run(LOCK.project, { project: file.project });
      const stored = (await db.get(PROJECTS.storedBytes, { project: file.project }))?.n ?? 0;
      if (stored + file.bytes > maxStoredBytes) return false;
      await db.run(FILES.insert, fileToParams(file));
      return true;
    });
  }

  async getFile(id: string): Promise<FileRecord | null> {
    const row = await this.#db.get(FILES.get, { id });
    return row === undefined ? null : rowToFile(row);
  }

  async listFiles(q: ListFilesQuery): Promise<Page<FileRecord>> {
    const limit = whole(q.limit);
    const params = { project: q.project ?? null, purpose: q.purpose ?? null, after: q.after ?? null, limit: limit + 1 };
    const rows = await this.#db.all(q.order === 'asc' ? FILES.listAsc : FILES.listDesc, params);
    return toPage(rows, limit, rowToFile);
  }

  async deleteFile(id: string): Promise<boolean> {
    return (await this.#db.run(FILES.delete, { id })) > 0;
  }

  async listExpiredFiles(now: number, limit: number): Promise<FileRecord[]> {
    return (await this.#db.all(FILES.listExpired, { now, limit: whole(limit) })).map(rowToFile);
  }

  async deleteExpiredFile(id: string, now: number): Promise<boolean> {
    return transaction(this.#pool, async (db) => {
      await db.run(LOCK.file, { file_id: id });
      return (await db.run(FILES.deleteExpired, { id, now })) > 0;
    });
  }

  async bytesByPurpose(project?: string): Promise<Record<string, number>> {
    const rows = await this.#db.all(FILES.bytesByPurpose, { project: project ?? null });
    return Object.fromEntries(rows.map((r) => [r.purpose, r.bytes]));
  }

  // ── batches ────────────────────────────────────────────────────────────────────────────────

  async insertBatch(batch: BatchRecord, quota?: BatchQuota): Promise<keyof BatchQuotaLimits | null> {
    return transaction(this.#pool, async (db) => {
      // The file lock orders this insert with deleteExpiredFile of its input.
      if (quota !== undefined) await db.run(LOCK.project, { project: batch.project });
      await db.run(LOCK.file, { file_id: batch.inputFileId });
      if (quota?.maxActiveBatches != null) {
        const active = (await db.get(PROJECTS.activeBatches, { project: batch.project }))?.n ?? 0;
        if (active + 1 > quota.maxActiveBatches) return 'maxActiveBatches';
      }
      if (quota?.maxQueuedRequests != null) {
        const queued = (await db.get(PROJECTS.queuedRequests, { project: batch.project }))?.n ?? 0;
        if (queued + quota.requests > quota.maxQueuedRequests) return 'maxQueuedRequests';
      }
      await db.run(BATCHES.insert, batchToParams(batch));
      await db.notify(insertedBatchEvents(batch));
      return null;
    });
  }

  async getBatch(id: string): Promise<BatchRecord | null> {
    const row = await this.#db.get(BATCHES.get, { id });
    return row === undefined ? null : rowToBatch(row);
  }

  async listBatches(q: ListBatchesQuery): Promise<Page<BatchRecord>> {
    const limit = whole(q.limit);
    const rows = await this.#db.all(BATCHES.listDesc, { project: q.project ?? null, after: q.after ?? null, limit: limit + 1 });
    return toPage(rows, limit, rowToBatch);
  }

  async isInputOfUnfinishedBatch(fileId: string): Promise<boolean> {
    return (await this.#db.get(BATCHES.isInputOfUnfinished, { file_id: fileId })) !== undefined;
  }

  async countBatchesByStatus(project?: string): Promise<Partial<Record<BatchStatus, number>>> {
    return countsByStatus(await this.#db.all(BATCHES.countByStatus, { project: project ?? null }));
  }

  async transition(
    id: string,
    from: readonly BatchStatus[],
    to: BatchStatus,
    at: number,
    fields: TransitionFields = {},
    fence?: LeaseFence,
  ): Promise<BatchRecord | null> {
    assertTransitions(from, to);
    if (from.length === 0) return null;
    if (fence !== undefined && fence.batchId !== id) throw new Error(`The transition of ${id} is fenced by the lease of ${fence.batchId}`);
    return transaction(this.#pool, async (db) => {
      let row = await db.get(BATCHES.transition, { ...transitionParams(id, to, at, fields, fence), from: [...from] });
      if (row === undefined) return null;
      const shards = fields.insertShards ?? [];
      if (shards.length > 0) {
        await db.run(BATCHES.insertShards, {
          batch_id: id,
          shard_no: shards.map((s) => s.shardNo),
          first_line: shards.map((s) => s.firstLine),
          requests: shards.map((s) => s.requests),
          start_byte: shards.map((s) => s.startByte),
          end_byte: shards.map((s) => s.endByte),
        });
      }
      for (const f of fields.insertFiles ?? []) await db.run(FILES.insert, fileToParams(f));
      if (fields.webhookEvent) await this.webhooks.queue(db, fields.webhookEvent);
      // Read live again once its shards exist.
      if (shards.length > 0) row = (await db.get(BATCHES.get, { id })) ?? row;
      const batch = rowToBatch(row);
      await db.notify(batchEvents(batch, to));
      return batch;
    });
  }

  // ── leases ─────────────────────────────────────────────────────────────────────────────────

  listClaimable(limit: number): Promise<ClaimableWork> {
    return this.#leases.listClaimable(whole(limit));
  }

  claimBatch(id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]): Promise<BatchLease | null> {
    return this.#leases.claimBatch(id, owner, leaseMs, from);
  }

  releaseBatch(fence: LeaseFence): Promise<boolean> {
    return this.#leases.releaseBatch(fence);
  }

  claimShard(batchId: string, owner: string, leaseMs: number): Promise<ShardLease | null> {
    return this.#leases.claimShard(batchId, owner, leaseMs);
  }

  heartbeat(h: Heartbeat): Promise<HeartbeatResult> {
    return this.#leases.heartbeat(h);
  }

  releaseShard(r: ShardRelease): Promise<{ held: boolean; remaining: number }> {
    return this.#leases.releaseShard(r);
  }

  listShards(batchId: string): Promise<ShardRecord[]> {
    return this.#leases.listShards(batchId);
  }

  releaseAllLeases(): Promise<number> {
    return this.#leases.releaseAll();
  }

  expireUnclaimed(now: number): Promise<BatchRecord[]> {
    // Each expired batch's batch.expired deliveries are queued in the same write.
    return this.#leases.expireUnclaimed(now, (db, b) => this.webhooks.queueTerminal(db, b.id, 'expired', now));
  }

  listQueuedBatches(project: string | undefined, limit: number): Promise<Array<{ id: string; project: string }>> {
    return this.#leases.listQueued(project, whole(limit));
  }

  // ── segments, replicas, deletion ───────────────────────────────────────────────────────────

  addSegment(fence: ShardFence, seg: NewSegment): Promise<boolean> {
    return this.#results.addSegment(fence, seg);
  }

  sealSegment(fence: ShardFence, blobKey: string, lines: number, bytes: number): Promise<boolean> {
    return this.#results.sealSegment(fence, blobKey, lines, bytes);
  }

  listSegments(batchId: string, q?: { shardNo?: number; kind?: ResultKind }): Promise<SegmentRecord[]> {
    return this.#results.listSegments(batchId, q);
  }

  deleteSegments(batchId: string): Promise<number> {
    return this.#results.deleteSegments(batchId);
  }

  inFlightByProject(): Promise<Record<string, number>> {
    return this.#leases.inFlightByProject();
  }

  listReplicas(withinMs: number): Promise<ReplicaRecord[]> {
    return this.#results.listReplicas(withinMs);
  }

  pruneReplicas(olderThanMs: number): Promise<number> {
    return this.#results.pruneReplicas(olderThanMs);
  }

  deleteBatch(id: string): Promise<BatchRecord | null> {
    return this.#results.deleteBatch(id);
  }

  listTombstones(limit: number): Promise<Array<{ id: string; project: string; deletedAt: number; liveLeases: number }>> {
    return this.#results.listTombstones(whole(limit));
  }

  purgeBatch(id: string): Promise<void> {
    return this.#results.purgeBatch(id);
  }

  // ── change feed ────────────────────────────────────────────────────────────────────────────

  subscribe(listener: (e: StoreEvent) => void): () => void {
    return this.#feed.subscribe(listener);
  }

  // ── dashboard and analytics ────────────────────────────────────────────────────────────────

  async listBatchesPage(q: BatchesPageQuery): Promise<{ data: BatchRecord[]; total: number }> {
    const f = { status: q.status ?? null, project: q.project ?? null };
    const [rows, count] = await Promise.all([
      this.#db.all(ANALYTICS.batchesPage, { ...f, limit: whole(q.limit), offset: whole(q.offset) }),
      this.#db.get(ANALYTICS.countBatches, f),
    ]);
    return { data: rows.map(rowToBatch), total: count?.n ?? 0 };
  }

  async countBatchesCreatedSince(since: number, project?: string): Promise<Partial<Record<BatchStatus, number>>> {
    return countsByStatus(await this.#db.all(ANALYTICS.countByStatus, { since, project: project ?? null }));
  }

  addAnalyticsMinutes(rows: readonly AnalyticsMinute[]): Promise<void> {
    return addMinutes(this.#db, rows);
  }

  listAnalyticsMinutes(from: number, to: number, project?: string): Promise<AnalyticsMinute[]> {
    return listMinutes(this.#db, from, to, project);
  }

  pruneAnalyticsMinutes(before: number): Promise<number> {
    return this.#db.run(ANALYTICS.prune, { before });
  }

  // ── projects and keys ──────────────────────────────────────────────────────────────────────

  async projectUsage(project: string): Promise<ProjectUsage> {
    const [bytes, active, queued] = await Promise.all([
      this.#db.get(PROJECTS.storedBytes, { project }),
      this.#db.get(PROJECTS.activeBatches, { project }),
      this.#db.get(PROJECTS.queuedRequests, { project }),
    ]);
    return { storedBytes: bytes?.n ?? 0, activeBatches: active?.n ?? 0, queuedRequests: queued?.n ?? 0 };
  }

  async storedBytesByProject(): Promise<Record<string, number>> {
    return Object.fromEntries((await this.#db.all(PROJECTS.storedBytesByProject, {})).map((r) => [r.project, r.bytes]));
  }

  async listProjects(): Promise<string[]> {
    return (await this.#db.all(PROJECTS.list, {})).map((r) => r.project);
  }

  async getProjectLimits(project: string): Promise<ProjectLimits> {
    const r = await this.#db.get(PROJECTS.getLimits, { project });
    return { maxStoredBytes: r?.max_stored_bytes ?? null, maxActiveBatches: r?.max_active_batches ?? null, maxQueuedRequests: r?.max_queued_requests ?? null };
  }

  async setProjectLimits(project: string, limits: Partial<ProjectLimits>): Promise<void> {
    await this.#db.run(PROJECTS.setLimits, {
      project,
      set_bytes: flag(limits.maxStoredBytes),
      max_stored_bytes: limits.maxStoredBytes ?? null,
      set_active: flag(limits.maxActiveBatches),
      max_active_batches: limits.maxActiveBatches ?? null,
      set_queued: flag(limits.maxQueuedRequests),
      max_queued_requests: limits.maxQueuedRequests ?? null,
    });
  }

  async insertApiKey(key: ApiKeyRecord): Promise<void> {
    await this.#db.run(KEYS.insert, apiKeyToParams(key));
  }

  async findApiKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const row = await this.#db.get(KEYS.byHash, { hash });
    return row === undefined ? null : rowToApiKey(row);
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (await this.#db.all(KEYS.list, {})).map(rowToApiKey);
  }

  async revokeApiKey(id: string, at: number): Promise<boolean> {
    return (await this.#db.run(KEYS.revoke, { id, at })) > 0;
  }

  async countApiKeys(): Promise<number> {
    return (await this.#db.get(KEYS.count, {}))?.n ?? 0;
  }

  async touchApiKey(id: string, at: number): Promise<void> {
    await this.#db.run(KEYS.touch, { id, at });
  }

  /** Ends the change feed and the pool; idempotent. Every call after it rejects. */
  close(): Promise<void> {
    this.#closing ??= this.#feed.close().then(() => this.#pool.end());
    return this.#closing;
  }
}

function countsByStatus(rows: Array<{ status: string; n: number }>): Partial<Record<BatchStatus, number>> {
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
