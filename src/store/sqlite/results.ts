import type Database from 'better-sqlite3';

import type { BatchRecord } from '../../domain/index.js';
import type { ResultKind } from '../blob-keys.js';
import type { LocalFeed } from '../local-feed.js';
import type { NewSegment, ReplicaRecord, SegmentRecord, ShardFence } from '../meta-store.js';
import { batchDeletedEvent } from '../sql/events.js';
import { whole } from '../sql/paging.js';
import { rowToReplica, rowToSegment } from '../sql/rows.js';
import { type ClusterStatements, prepareClusterStatements } from './cluster-statements.js';

const fenceParams = (f: ShardFence) => ({ batchId: f.batchId, shardNo: f.shardNo, owner: f.owner, epoch: f.epoch });

/**
 * What outlives a shard lease in SqliteMetaStore (postgres/results.ts is its twin): result
 * segments, replica rows and deleted batches' tombstones. Synchronous, like Leases.
 */
export class Results {
  readonly #s: ClusterStatements;
  readonly #feed: LocalFeed;
  readonly #now: () => number;
  readonly #deleteBatch: Database.Transaction<(id: string) => BatchRecord | null>;
  readonly #purge: Database.Transaction<(id: string) => void>;

  /** `liveBatch` reads a batch as getBatch does, inside the caller's transaction. */
  constructor(db: Database.Database, now: () => number, feed: LocalFeed, liveBatch: (id: string) => BatchRecord | null) {
    const s = prepareClusterStatements(db);
    this.#s = s;
    this.#feed = feed;
    this.#now = now;
    // One transaction: the batch as read live before it goes, its result files' rows, its tombstone.
    this.#deleteBatch = db.transaction((id) => {
      const b = liveBatch(id);
      if (b === null) return null;
      for (const fileId of [b.outputFileId, b.errorFileId]) if (fileId !== null) s.deletion.deleteResultFile.run(fileId);
      s.deletion.deleteBatch.run(id);
      s.deletion.tombstone.run({ now: now(), id: b.id, project: b.project });
      return b;
    });
    this.#purge = db.transaction((id) => {
      s.deletion.purgeShards.run(id);
      s.segments.delete.run(id);
      s.deletion.purgeTombstone.run(id);
    });
  }

  addSegment(fence: ShardFence, seg: NewSegment): boolean {
    const params = { now: this.#now(), ...fenceParams(fence), kind: seg.kind, seq: seg.seq, blobKey: seg.blobKey, lines: seg.lines, bytes: seg.bytes };
    return this.#s.segments.add.run(params).changes > 0;
  }

  sealSegment(fence: ShardFence, blobKey: string, lines: number, bytes: number): boolean {
    return this.#s.segments.seal.run({ ...fenceParams(fence), blobKey, lines, bytes }).changes > 0;
  }

  listSegments(batchId: string, q: { shardNo?: number; kind?: ResultKind } = {}): SegmentRecord[] {
    return this.#s.segments.list.all({ batchId, shardNo: q.shardNo ?? null, kind: q.kind ?? null }).map(rowToSegment);
  }

  deleteSegments(batchId: string): number {
    return this.#s.segments.delete.run(batchId).changes;
  }

  listReplicas(withinMs: number): ReplicaRecord[] {
    return this.#s.replicas.list.all({ now: this.#now(), within: withinMs }).map(rowToReplica);
  }

  pruneReplicas(olderThanMs: number): number {
    return this.#s.replicas.prune.run({ now: this.#now(), older: olderThanMs }).changes;
  }

  deleteBatch(id: string): BatchRecord | null {
    const removed = this.#deleteBatch.immediate(id);
    if (removed) this.#feed.emit(batchDeletedEvent(removed));
    return removed;
  }

  listTombstones(limit: number): Array<{ id: string; project: string; deletedAt: number; liveLeases: number }> {
    return this.#s.deletion.listTombstones
      .all({ now: this.#now(), limit: whole(limit) })
      .map((r) => ({ id: r.id, project: r.project, deletedAt: r.deleted_at, liveLeases: r.live_leases }));
  }

  purgeBatch(id: string): void {
    this.#purge.immediate(id);
  }
}
