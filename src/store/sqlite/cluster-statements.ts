import type Database from 'better-sqlite3';

import type { ShardFence } from '../meta-store.js';
import { liveLease } from '../sql/live-batch.js';
import type { ReplicaRow, SegmentRow } from '../sql/rows.js';
import { NOW } from './sqlite-db.js';

// Result segments, replicas and deleted batches (postgres/cluster-statements.ts is their twin),
// prepared once. One process writes the file, so a segment write needs no row lock: the shard
// fence in its WHERE is checked in the same statement.

type Now = { now: number };

const HELD_SHARD = `EXISTS (SELECT 1 FROM batch_shards
  WHERE batch_id = @batchId AND shard_no = @shardNo AND lease_owner = @owner AND epoch = @epoch AND state = 'leased')`;

export interface TombstoneRow {
  id: string;
  project: string;
  deleted_at: number;
  live_leases: number;
}

export type ClusterStatements = ReturnType<typeof prepareClusterStatements>;

export function prepareClusterStatements(db: Database.Database) {
  const segments = {
    // `reg_seq` numbers segments in the order they were registered (max + 1: the file has one writer).
    add: db.prepare<Now & ShardFence & { kind: string; seq: number; blobKey: string; lines: number | null; bytes: number | null }>(
      `INSERT INTO result_segments (batch_id, kind, shard_no, epoch, seq, blob_key, lines, bytes, created_at, reg_seq)
       SELECT @batchId, @kind, @shardNo, @epoch, @seq, @blobKey, @lines, @bytes, @now, (SELECT COALESCE(MAX(reg_seq), 0) + 1 FROM result_segments)
       WHERE ${HELD_SHARD}`,
    ),
    seal: db.prepare<ShardFence & { blobKey: string; lines: number; bytes: number }>(
      `UPDATE result_segments SET lines = @lines, bytes = @bytes
       WHERE batch_id = @batchId AND shard_no = @shardNo AND blob_key = @blobKey AND ${HELD_SHARD}`,
    ),
    list: db.prepare<{ batchId: string; shardNo: number | null; kind: string | null }, SegmentRow>(
      `SELECT * FROM result_segments WHERE batch_id = @batchId AND (@shardNo IS NULL OR shard_no = @shardNo) AND (@kind IS NULL OR kind = @kind)
       ORDER BY kind, shard_no, epoch, seq`,
    ),
    delete: db.prepare<[string]>('DELETE FROM result_segments WHERE batch_id = ?'),
  };

  const replicas = {
    list: db.prepare<Now & { within: number }, ReplicaRow>(
      `SELECT r.*,
         (SELECT COUNT(*) FROM batch_shards s WHERE s.lease_owner = r.id AND ${liveLease('s', NOW)})
         + (SELECT COUNT(*) FROM batches b WHERE b.lease_owner = r.id AND ${liveLease('b', NOW)}) AS leases
       FROM replicas r WHERE r.heartbeat_at >= @now - @within ORDER BY r.started_at, r.id`,
    ),
    prune: db.prepare<Now & { older: number }>('DELETE FROM replicas WHERE heartbeat_at < @now - @older'),
  };

  const deletion = {
    deleteBatch: db.prepare<[string]>('DELETE FROM batches WHERE id = ?'),
    deleteResultFile: db.prepare<[string]>('DELETE FROM files WHERE id = ?'),
    tombstone: db.prepare<Now & { id: string; project: string }>('INSERT OR REPLACE INTO batch_tombstones (id, project, deleted_at) VALUES (@id, @project, @now)'),
    listTombstones: db.prepare<Now & { limit: number }, TombstoneRow>(
      `SELECT t.id, t.project, t.deleted_at, (SELECT COUNT(*) FROM batch_shards s WHERE s.batch_id = t.id AND ${liveLease('s', NOW)}) AS live_leases
       FROM batch_tombstones t ORDER BY t.deleted_at, t.id LIMIT @limit`,
    ),
    purgeShards: db.prepare<[string]>('DELETE FROM batch_shards WHERE batch_id = ?'),
    purgeTombstone: db.prepare<[string]>('DELETE FROM batch_tombstones WHERE id = ?'),
  };

  return { segments, replicas, deletion };
}
