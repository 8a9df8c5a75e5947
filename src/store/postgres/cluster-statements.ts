import { liveBatchColumns, liveLease } from '../sql/live-batch.js';
import type { BatchRow, ReplicaRow, SegmentRow } from '../sql/rows.js';
import { NOW_MS, sql } from './pg-db.js';

// Result segments, replicas and deleted batches (cluster-store-spec.md, "Verbs").

interface FenceParams {
  batch_id: string;
  shard_no: number;
  owner: string;
  epoch: number;
}

// A segment write holds the shard row FOR SHARE until it commits: a claimShard of a new holder
// (FOR UPDATE SKIP LOCKED) passes the shard over meanwhile, and a claim already made is seen on
// the row's newest version (a stale epoch finds no row). So no segment of an old epoch can commit
// after the new holder has listed the segments.
const HELD_SHARD = `SELECT 1 FROM batch_shards
  WHERE batch_id = @batch_id AND shard_no = @shard_no AND lease_owner = @owner AND epoch = @epoch AND state = 'leased'
  FOR SHARE`;

export const SEGMENTS = {
  add: sql<FenceParams & { kind: string; seq: number; blob_key: string; lines: number | null; bytes: number | null }>(
    `WITH held AS (${HELD_SHARD})
     INSERT INTO result_segments (batch_id, kind, shard_no, epoch, seq, blob_key, lines, bytes, created_at)
     SELECT @batch_id, @kind, @shard_no, @epoch, @seq, @blob_key, @lines::bigint, @bytes::bigint, ${NOW_MS} FROM held`,
  ),
  seal: sql<FenceParams & { blob_key: string; lines: number; bytes: number }, { held: boolean; sealed: number }>(
    `WITH held AS (${HELD_SHARD}),
     sealed AS (
       UPDATE result_segments SET lines = @lines::bigint, bytes = @bytes::bigint
       WHERE batch_id = @batch_id AND shard_no = @shard_no AND blob_key = @blob_key AND EXISTS (SELECT 1 FROM held)
       RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM held) AS held, (SELECT COUNT(*) FROM sealed) AS sealed`,
  ),
  list: sql<{ batch_id: string; shard_no: number | null; kind: string | null }, SegmentRow>(
    `SELECT * FROM result_segments
     WHERE batch_id = @batch_id AND (@shard_no::int IS NULL OR shard_no = @shard_no) AND (@kind::text IS NULL OR kind = @kind)
     ORDER BY kind COLLATE "C", shard_no, epoch, seq`,
  ),
  delete: sql<{ batch_id: string }>('DELETE FROM result_segments WHERE batch_id = @batch_id'),
};

export const REPLICAS = {
  list: sql<{ within_ms: number }, ReplicaRow>(
    `SELECT r.*,
       (SELECT COUNT(*) FROM batch_shards s WHERE s.lease_owner = r.id AND ${liveLease('s', NOW_MS)})
       + (SELECT COUNT(*) FROM batches b WHERE b.lease_owner = r.id AND ${liveLease('b', NOW_MS)}) AS leases
     FROM replicas r WHERE r.heartbeat_at >= ${NOW_MS} - @within_ms::bigint
     ORDER BY r.id COLLATE "C"`,
  ),
  prune: sql<{ older_than_ms: number }>(`DELETE FROM replicas WHERE heartbeat_at < ${NOW_MS} - @older_than_ms::bigint`),
};

export interface TombstoneRow {
  id: string;
  project: string;
  deleted_at: number;
  live_leases: number;
}

export const DELETION = {
  deleteBatch: sql<{ id: string }, BatchRow>(
    `WITH gone AS (DELETE FROM batches WHERE id = @id RETURNING *)
     SELECT ${liveBatchColumns(NOW_MS)} FROM gone b`,
  ),
  deleteResultFiles: sql<{ ids: string[] }>('DELETE FROM files WHERE id = ANY(@ids::text[])'),
  tombstone: sql<{ id: string; project: string }>(`INSERT INTO batch_tombstones (id, project, deleted_at) VALUES (@id, @project, ${NOW_MS})`),
  listTombstones: sql<{ limit: number }, TombstoneRow>(
    `SELECT t.id, t.project, t.deleted_at,
       (SELECT COUNT(*) FROM batch_shards s WHERE s.batch_id = t.id AND ${liveLease('s', NOW_MS)}) AS live_leases
     FROM batch_tombstones t ORDER BY t.deleted_at, t.id COLLATE "C" LIMIT @limit`,
  ),
  // One statement: the three deletes commit together.
  purge: sql<{ id: string }>(
    `WITH shards AS (DELETE FROM batch_shards WHERE batch_id = @id), segments AS (DELETE FROM result_segments WHERE batch_id = @id)
     DELETE FROM batch_tombstones WHERE id = @id`,
  ),
};
