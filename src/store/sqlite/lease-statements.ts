import type Database from 'better-sqlite3';

import type { BatchStatus } from '../../domain/index.js';
import type {
  ClaimableBatch,
  ClaimableWork,
  ClaimNeed,
  Heartbeat,
  HeartbeatResult,
  LeaseFence,
  NewSegment,
  ReplicaRecord,
  SegmentRecord,
  ShardFence,
  ShardRecord,
  ShardRelease,
} from '../meta-store.js';
import { type ReplicaRow, rowToReplica, rowToSegment, rowToShard, type SegmentRow, type ShardRow } from '../sql/rows.js';

/** A shard that can be taken: not done, and never leased, given back, or its lease expired. */
const CLAIMABLE_SHARD = `s.state <> 'done' AND (s.lease_owner IS NULL OR s.lease_expires_at <= @now)`;
const LIVE_BATCH_LEASE = `b.lease_owner IS NOT NULL AND b.lease_expires_at > @now`;
const LIVE_SHARD_LEASE = `s.state = 'leased' AND s.lease_expires_at > @now`;

interface ClaimableRow {
  id: string;
  project: string;
  status: string;
  created_at: number;
  expires_at: number;
  batch_leased: number;
  open_shards: number;
  claimable: number;
  leased_shards: number;
}

type Now = { now: number };

interface ProgressParams {
  completed: number;
  failed: number;
  input_tokens: number;
  cached_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
}

/**
 * The lease, shard, segment, replica and tombstone statements of SqliteMetaStore (see the verbs'
 * contract in meta-store.ts). Each function runs synchronously inside the caller's transaction
 * where it needs one; `now` is the store's clock in ms.
 */
export function prepareLeases(db: Database.Database) {
  const claimable = db.prepare<Now & { limit: number }, ClaimableRow>(
    `SELECT b.id, b.project, b.status, b.created_at, b.expires_at,
       CASE WHEN ${LIVE_BATCH_LEASE} THEN 1 ELSE 0 END AS batch_leased,
       (SELECT COUNT(*) FROM batch_shards s WHERE s.batch_id = b.id AND s.state <> 'done') AS open_shards,
       EXISTS (SELECT 1 FROM batch_shards s WHERE s.batch_id = b.id AND ${CLAIMABLE_SHARD}) AS claimable,
       (SELECT COUNT(*) FROM batch_shards s WHERE s.batch_id = b.id AND ${LIVE_SHARD_LEASE}) AS leased_shards
     FROM batches b
     WHERE (b.status = 'validating' AND NOT (${LIVE_BATCH_LEASE}))
        OR (b.status IN ('in_progress', 'cancelling') AND EXISTS (SELECT 1 FROM batch_shards s WHERE s.batch_id = b.id AND ${CLAIMABLE_SHARD}))
        OR (b.status IN ('in_progress', 'cancelling', 'finalizing') AND NOT (${LIVE_BATCH_LEASE})
            AND NOT EXISTS (SELECT 1 FROM batch_shards s WHERE s.batch_id = b.id AND s.state <> 'done'))
     ORDER BY b.seq ASC LIMIT @limit`,
  );
  const leasesByProject = db.prepare<Now, { project: string; n: number }>(
    `SELECT project, SUM(n) AS n FROM (
       SELECT b.project AS project, COUNT(*) AS n FROM batch_shards s JOIN batches b ON b.id = s.batch_id WHERE ${LIVE_SHARD_LEASE} GROUP BY b.project
       UNION ALL
       SELECT b.project AS project, COUNT(*) AS n FROM batches b WHERE ${LIVE_BATCH_LEASE} GROUP BY b.project
     ) GROUP BY project`,
  );
  const claimBatch = db.prepare<Now & { id: string; owner: string; lease: number; from: string }, { lease_epoch: number }>(
    `UPDATE batches AS b SET lease_owner = @owner, lease_epoch = lease_epoch + 1, lease_expires_at = @now + @lease
     WHERE b.id = @id AND b.status IN (SELECT value FROM json_each(@from)) AND NOT (${LIVE_BATCH_LEASE})
     RETURNING lease_epoch`,
  );
  const releaseBatch = db.prepare<LeaseFence>(
    `UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = @batchId AND lease_owner = @owner AND lease_epoch = @epoch`,
  );
  const renewBatch = db.prepare<Now & LeaseFence & { lease: number }>(
    `UPDATE batches SET lease_expires_at = @now + @lease WHERE id = @batchId AND lease_owner = @owner AND lease_epoch = @epoch`,
  );
  const claimShard = db.prepare<Now & { batchId: string; owner: string; lease: number }, ShardRow>(
    `UPDATE batch_shards SET state = 'leased', lease_owner = @owner, epoch = epoch + 1, lease_expires_at = @now + @lease, in_flight = 0
     WHERE batch_id = @batchId
       AND shard_no = (SELECT s.shard_no FROM batch_shards s WHERE s.batch_id = @batchId AND ${CLAIMABLE_SHARD} ORDER BY s.shard_no LIMIT 1)
       AND EXISTS (SELECT 1 FROM batches WHERE id = @batchId AND status IN ('in_progress', 'cancelling'))
     RETURNING *`,
  );
  const renewShard = db.prepare<Now & ShardFence & ProgressParams & { lease: number; in_flight: number }>(
    `UPDATE batch_shards SET lease_expires_at = @now + @lease, completed = @completed, failed = @failed,
       input_tokens = @input_tokens, cached_tokens = @cached_tokens, output_tokens = @output_tokens,
       reasoning_tokens = @reasoning_tokens, total_tokens = @total_tokens, in_flight = @in_flight
     WHERE batch_id = @batchId AND shard_no = @shardNo AND lease_owner = @owner AND epoch = @epoch AND state = 'leased'`,
  );
  const releaseShard = db.prepare<ShardFence & ProgressParams & { outcome: string | null }>(
    `UPDATE batch_shards SET completed = @completed, failed = @failed,
       input_tokens = @input_tokens, cached_tokens = @cached_tokens, output_tokens = @output_tokens,
       reasoning_tokens = @reasoning_tokens, total_tokens = @total_tokens, in_flight = 0,
       lease_owner = NULL, lease_expires_at = NULL, state = CASE WHEN @outcome IS NULL THEN 'pending' ELSE 'done' END, outcome = @outcome
     WHERE batch_id = @batchId AND shard_no = @shardNo AND lease_owner = @owner AND epoch = @epoch AND state = 'leased'`,
  );
  const openShards = db.prepare<[string], number>(`SELECT COUNT(*) FROM batch_shards WHERE batch_id = ? AND state <> 'done'`).pluck();
  const listShards = db.prepare<[string], ShardRow>('SELECT * FROM batch_shards WHERE batch_id = ? ORDER BY shard_no');
  const batchStatus = db.prepare<[string], string>('SELECT status FROM batches WHERE id = ?').pluck();
  const upsertReplica = db.prepare<Now & Heartbeat['replica']>(
    `INSERT INTO replicas (id, host, pid, started_at, heartbeat_at, state, in_flight, worker_limit, version)
     VALUES (@id, @host, @pid, @startedAt, @now, @state, @inFlight, @workerLimit, @version)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = @now, state = @state, in_flight = @inFlight, worker_limit = @workerLimit`,
  );
  const releaseAllShards = db.prepare(`UPDATE batch_shards SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, in_flight = 0 WHERE state = 'leased'`);
  const releaseAllBatches = db.prepare('UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL');
  const expireUnclaimed = db.prepare<Now & { at: number }, { id: string }>(
    `UPDATE batches AS b SET status = 'expired', expired_at = @at
     WHERE b.status = 'validating' AND b.expires_at <= @at AND NOT (${LIVE_BATCH_LEASE}) RETURNING id`,
  );
  const queued = db.prepare<Now & { project: string | null; limit: number }, { id: string; project: string }>(
    `SELECT b.id, b.project FROM batches b
     WHERE b.status = 'validating' AND NOT (${LIVE_BATCH_LEASE}) AND (@project IS NULL OR b.project = @project)
     ORDER BY b.seq ASC LIMIT @limit`,
  );
  const shardHeld = `EXISTS (SELECT 1 FROM batch_shards WHERE batch_id = @batchId AND shard_no = @shardNo AND lease_owner = @owner AND epoch = @epoch AND state = 'leased')`;
  const addSegment = db.prepare<Now & ShardFence & { kind: string; seq: number; blobKey: string; lines: number | null; bytes: number | null }>(
    `INSERT INTO result_segments (batch_id, kind, shard_no, epoch, seq, blob_key, lines, bytes, created_at, reg_seq)
     SELECT @batchId, @kind, @shardNo, @epoch, @seq, @blobKey, @lines, @bytes, @now, (SELECT COALESCE(MAX(reg_seq), 0) + 1 FROM result_segments)
     WHERE ${shardHeld}`,
  );
  const sealSegment = db.prepare<ShardFence & { blobKey: string; lines: number; bytes: number }>(
    `UPDATE result_segments SET lines = @lines, bytes = @bytes
     WHERE batch_id = @batchId AND shard_no = @shardNo AND blob_key = @blobKey AND ${shardHeld}`,
  );
  const listSegments = db.prepare<{ batchId: string; shardNo: number | null; kind: string | null }, SegmentRow>(
    `SELECT * FROM result_segments WHERE batch_id = @batchId AND (@shardNo IS NULL OR shard_no = @shardNo) AND (@kind IS NULL OR kind = @kind)
     ORDER BY kind, shard_no, epoch, seq`,
  );
  const deleteSegments = db.prepare<[string]>('DELETE FROM result_segments WHERE batch_id = ?');
  const listReplicas = db.prepare<Now & { within: number }, ReplicaRow>(
    `SELECT r.*,
       (SELECT COUNT(*) FROM batch_shards s WHERE s.lease_owner = r.id AND ${LIVE_SHARD_LEASE})
       + (SELECT COUNT(*) FROM batches b WHERE b.lease_owner = r.id AND b.lease_expires_at > @now) AS leases
     FROM replicas r WHERE r.heartbeat_at >= @now - @within ORDER BY r.started_at, r.id`,
  );
  const inFlightByProject = db.prepare<Now, { project: string; n: number }>(
    `SELECT b.project AS project, SUM(s.in_flight) AS n FROM batch_shards s JOIN batches b ON b.id = s.batch_id WHERE ${LIVE_SHARD_LEASE} GROUP BY b.project`,
  );
  const pruneReplicas = db.prepare<Now & { older: number }>('DELETE FROM replicas WHERE heartbeat_at < @now - @older');
  const insertTombstone = db.prepare<Now & { id: string; project: string }>('INSERT OR REPLACE INTO batch_tombstones (id, project, deleted_at) VALUES (@id, @project, @now)');
  const listTombstones = db.prepare<Now & { limit: number }, { id: string; project: string; deleted_at: number; live: number }>(
    `SELECT t.id, t.project, t.deleted_at, (SELECT COUNT(*) FROM batch_shards s WHERE s.batch_id = t.id AND ${LIVE_SHARD_LEASE}) AS live
     FROM batch_tombstones t ORDER BY t.deleted_at, t.id LIMIT @limit`,
  );
  const purgeShards = db.prepare<[string]>('DELETE FROM batch_shards WHERE batch_id = ?');
  const purgeTombstone = db.prepare<[string]>('DELETE FROM batch_tombstones WHERE id = ?');

  const progressParams = (p: { completed: number; failed: number; usage: ShardRelease['usage'] }): ProgressParams => ({
    completed: p.completed,
    failed: p.failed,
    input_tokens: p.usage.inputTokens,
    cached_tokens: p.usage.cachedTokens,
    output_tokens: p.usage.outputTokens,
    reasoning_tokens: p.usage.reasoningTokens,
    total_tokens: p.usage.totalTokens,
  });
  const statusOf = (id: string): BatchStatus | null => (batchStatus.get(id) as BatchStatus | undefined) ?? null;

  return {
    listClaimable(now: number, limit: number): ClaimableWork {
      const batches: ClaimableBatch[] = claimable.all({ now, limit: Math.max(0, Math.floor(limit)) }).map((r) => ({
        id: r.id,
        project: r.project,
        status: r.status as BatchStatus,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        need: needOf(r),
        leasedShards: r.leased_shards,
      }));
      return { batches, leasesByProject: Object.fromEntries(leasesByProject.all({ now }).map((r) => [r.project, r.n])) };
    },
    claimBatch(now: number, id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]): number | null {
      return claimBatch.get({ now, id, owner, lease: leaseMs, from: JSON.stringify(from) })?.lease_epoch ?? null;
    },
    releaseBatch: (fence: LeaseFence): boolean => releaseBatch.run(fence).changes > 0,
    claimShard(now: number, batchId: string, owner: string, leaseMs: number): ShardRecord | null {
      const row = claimShard.get({ now, batchId, owner, lease: leaseMs });
      return row === undefined ? null : rowToShard(row);
    },
    heartbeat(now: number, h: Heartbeat): HeartbeatResult {
      upsertReplica.run({ now, ...h.replica });
      return {
        shards: h.shards.map((s) => ({
          batchId: s.batchId,
          shardNo: s.shardNo,
          held: renewShard.run({ now, lease: h.leaseMs, batchId: s.batchId, shardNo: s.shardNo, owner: s.owner, epoch: s.epoch, in_flight: s.inFlight, ...progressParams(s) }).changes > 0,
          batchStatus: statusOf(s.batchId),
        })),
        batches: h.batches.map((b) => ({
          batchId: b.batchId,
          held: renewBatch.run({ now, lease: h.leaseMs, batchId: b.batchId, owner: b.owner, epoch: b.epoch }).changes > 0,
          batchStatus: statusOf(b.batchId),
        })),
      };
    },
    releaseShard(r: ShardRelease): { held: boolean; remaining: number } {
      const held = releaseShard.run({ batchId: r.batchId, shardNo: r.shardNo, owner: r.owner, epoch: r.epoch, outcome: r.outcome, ...progressParams(r) }).changes > 0;
      return { held, remaining: openShards.get(r.batchId) ?? 0 };
    },
    listShards: (batchId: string): ShardRecord[] => listShards.all(batchId).map(rowToShard),
    releaseAll: (): number => releaseAllShards.run().changes + releaseAllBatches.run().changes,
    expireUnclaimed: (now: number, at: number): string[] => expireUnclaimed.all({ now, at }).map((r) => r.id),
    listQueued: (now: number, project: string | undefined, limit: number) => queued.all({ now, project: project ?? null, limit: Math.max(0, Math.floor(limit)) }),
    addSegment: (now: number, f: ShardFence, seg: NewSegment): boolean =>
      addSegment.run({ now, batchId: f.batchId, shardNo: f.shardNo, owner: f.owner, epoch: f.epoch, kind: seg.kind, seq: seg.seq, blobKey: seg.blobKey, lines: seg.lines, bytes: seg.bytes }).changes > 0,
    sealSegment: (f: ShardFence, blobKey: string, lines: number, bytes: number): boolean =>
      sealSegment.run({ batchId: f.batchId, shardNo: f.shardNo, owner: f.owner, epoch: f.epoch, blobKey, lines, bytes }).changes > 0,
    listSegments: (batchId: string, shardNo: number | undefined, kind: string | undefined): SegmentRecord[] =>
      listSegments.all({ batchId, shardNo: shardNo ?? null, kind: kind ?? null }).map(rowToSegment),
    deleteSegments: (batchId: string): number => deleteSegments.run(batchId).changes,
    inFlightByProject: (now: number): Record<string, number> => Object.fromEntries(inFlightByProject.all({ now }).map((r) => [r.project, r.n])),
    listReplicas: (now: number, withinMs: number): ReplicaRecord[] => listReplicas.all({ now, within: withinMs }).map(rowToReplica),
    pruneReplicas: (now: number, olderThanMs: number): number => pruneReplicas.run({ now, older: olderThanMs }).changes,
    tombstone: (now: number, id: string, project: string): void => {
      insertTombstone.run({ now, id, project });
    },
    listTombstones: (now: number, limit: number) =>
      listTombstones.all({ now, limit: Math.max(0, Math.floor(limit)) }).map((r) => ({ id: r.id, project: r.project, deletedAt: r.deleted_at, liveLeases: r.live })),
    purge(id: string): void {
      purgeShards.run(id);
      deleteSegments.run(id);
      purgeTombstone.run(id);
    },
  };
}

function needOf(r: ClaimableRow): ClaimNeed {
  if (r.status === 'validating') return 'validate';
  if (r.open_shards === 0 && r.batch_leased === 0) return 'finalize';
  return 'run';
}
