import type pg from 'pg';

import type { BatchRecord } from '../../domain/index.js';
import type { ResultKind } from '../blob-keys.js';
import type { NewSegment, ReplicaRecord, SegmentRecord, ShardFence } from '../meta-store.js';
import { batchDeletedEvent } from '../sql/events.js';
import { rowToBatch, rowToReplica, rowToSegment } from '../sql/rows.js';
import { DELETION, REPLICAS, SEGMENTS } from './cluster-statements.js';
import { Db, transaction } from './pg-db.js';

const fenceParams = (f: ShardFence) => ({ batch_id: f.batchId, shard_no: f.shardNo, owner: f.owner, epoch: f.epoch });

/** What outlives a shard lease in PostgresMetaStore: result segments, replica rows and deleted batches' tombstones. */
export class Results {
  readonly #pool: pg.Pool;
  readonly #db: Db;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.#db = new Db(pool);
  }

  async addSegment(fence: ShardFence, seg: NewSegment): Promise<boolean> {
    const params = { ...fenceParams(fence), kind: seg.kind, seq: seg.seq, blob_key: seg.blobKey, lines: seg.lines, bytes: seg.bytes };
    return (await this.#db.run(SEGMENTS.add, params)) > 0;
  }

  async sealSegment(fence: ShardFence, blobKey: string, lines: number, bytes: number): Promise<boolean> {
    const r = await this.#db.get(SEGMENTS.seal, { ...fenceParams(fence), blob_key: blobKey, lines, bytes });
    return r !== undefined && r.held && r.sealed > 0;
  }

  async listSegments(batchId: string, q: { shardNo?: number; kind?: ResultKind } = {}): Promise<SegmentRecord[]> {
    return (await this.#db.all(SEGMENTS.list, { batch_id: batchId, shard_no: q.shardNo ?? null, kind: q.kind ?? null })).map(rowToSegment);
  }

  deleteSegments(batchId: string): Promise<number> {
    return this.#db.run(SEGMENTS.delete, { batch_id: batchId });
  }

  async listReplicas(withinMs: number): Promise<ReplicaRecord[]> {
    return (await this.#db.all(REPLICAS.list, { within_ms: Math.floor(withinMs) })).map(rowToReplica);
  }

  pruneReplicas(olderThanMs: number): Promise<number> {
    return this.#db.run(REPLICAS.prune, { older_than_ms: Math.floor(olderThanMs) });
  }

  async deleteBatch(id: string): Promise<BatchRecord | null> {
    return transaction(this.#pool, async (db) => {
      const row = await db.get(DELETION.deleteBatch, { id });
      if (row === undefined) return null;
      const batch = rowToBatch(row);
      const files = [batch.outputFileId, batch.errorFileId].filter((f): f is string => f !== null);
      if (files.length > 0) await db.run(DELETION.deleteResultFiles, { ids: files });
      await db.run(DELETION.tombstone, { id, project: batch.project });
      await db.notify([batchDeletedEvent(batch)]);
      return batch;
    });
  }

  async listTombstones(limit: number): Promise<Array<{ id: string; project: string; deletedAt: number; liveLeases: number }>> {
    const rows = await this.#db.all(DELETION.listTombstones, { limit });
    return rows.map((r) => ({ id: r.id, project: r.project, deletedAt: r.deleted_at, liveLeases: r.live_leases }));
  }

  async purgeBatch(id: string): Promise<void> {
    await this.#db.run(DELETION.purge, { id });
  }
}
