import { claimableSql, inFlightByProjectSql, leasesByProjectSql } from '../sql/claims.js';
import { USAGE_COLUMNS } from '../sql/columns.js';
import { claimableShard, liveBatchColumns, liveLease } from '../sql/live-batch.js';
import type { BatchRow, ShardRow } from '../sql/rows.js';
import { RUN_SQL } from '../sql/statuses.js';
import { EVENTS_CHANNEL, NOW_MS, sql } from './pg-db.js';

// The statements of batch and shard leases (cluster-store-spec.md, "Verbs"). Every lease time is
// the database server's clock (NOW_MS), never a replica's.

const LIVE = liveBatchColumns(NOW_MS);
const USAGE = USAGE_COLUMNS;

export interface ClaimableRow {
  id: string;
  project: string;
  status: string;
  created_at: number;
  expires_at: number;
  need: string;
  leased_shards: number;
}

/** The counters a heartbeat or a release writes to a shard, one array per column. */
export interface ShardCounterArrays {
  completed: number[];
  failed: number[];
  input_tokens: number[];
  cached_tokens: number[];
  output_tokens: number[];
  reasoning_tokens: number[];
  total_tokens: number[];
}

export const LEASES = {
  claimable: sql<{ limit: number }, ClaimableRow>(claimableSql(NOW_MS, '@limit')),
  leasesByProject: sql<Record<never, never>, { project: string; n: number }>(leasesByProjectSql(NOW_MS)),
  inFlightByProject: sql<Record<never, never>, { project: string; n: number }>(inFlightByProjectSql(NOW_MS)),

  claimBatch: sql<{ id: string; owner: string; lease_ms: number; from: string[] }, BatchRow>(
    `WITH claimed AS (
       UPDATE batches b SET lease_owner = @owner, lease_epoch = b.lease_epoch + 1, lease_expires_at = ${NOW_MS} + @lease_ms::bigint
       WHERE b.id = @id AND b.status = ANY(@from::text[]) AND NOT ${liveLease('b', NOW_MS)}
       RETURNING b.*)
     SELECT ${LIVE} FROM claimed b`,
  ),
  // The batch lease is given back, so the batch may be claimed again: `work` is notified with it.
  releaseBatch: sql<{ id: string; owner: string; epoch: number; work: string }>(
    `WITH released AS (
       UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL
       WHERE id = @id AND lease_owner = @owner AND lease_epoch = @epoch RETURNING id)
     SELECT pg_notify('${EVENTS_CHANNEL}', @work) FROM released`,
  ),

  // SKIP LOCKED: a shard another claimer (or a segment write, FOR SHARE) holds is passed over,
  // never waited for. The batch is read live in the same statement, so it cannot vanish between.
  claimShard: sql<{ batch_id: string; owner: string; lease_ms: number }, { shard: ShardRow; batch: BatchRow | null }>(
    `WITH pick AS (
       SELECT s.batch_id, s.shard_no FROM batch_shards s
       WHERE s.batch_id = @batch_id AND ${claimableShard('s', NOW_MS)}
         AND EXISTS (SELECT 1 FROM batches rb WHERE rb.id = @batch_id AND rb.status IN (${RUN_SQL}))
       ORDER BY s.shard_no LIMIT 1
       FOR UPDATE SKIP LOCKED),
     claimed AS (
       UPDATE batch_shards s SET state = 'leased', lease_owner = @owner, epoch = s.epoch + 1,
         lease_expires_at = ${NOW_MS} + @lease_ms::bigint, in_flight = 0
       FROM pick WHERE s.batch_id = pick.batch_id AND s.shard_no = pick.shard_no
       RETURNING s.*)
     SELECT to_jsonb(claimed) AS shard, (SELECT to_jsonb(lb) FROM (SELECT ${LIVE} FROM batches b WHERE b.id = claimed.batch_id) lb) AS batch
     FROM claimed`,
  ),

  upsertReplica: sql<{
    id: string;
    host: string;
    pid: number;
    started_at: number;
    state: string;
    in_flight: number;
    worker_limit: number;
    version: string;
  }>(
    `INSERT INTO replicas (id, host, pid, started_at, heartbeat_at, state, in_flight, worker_limit, version)
     VALUES (@id, @host, @pid, @started_at, ${NOW_MS}, @state, @in_flight, @worker_limit, @version)
     ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, started_at = excluded.started_at,
       heartbeat_at = excluded.heartbeat_at, state = excluded.state, in_flight = excluded.in_flight,
       worker_limit = excluded.worker_limit, version = excluded.version`,
  ),
  // Every shard lease of one heartbeat in one statement: renewed (with its live counters) where
  // owner and epoch still match, and each reported with its batch's status.
  renewShards: sql<
    ShardCounterArrays & { batch_id: string[]; shard_no: number[]; owner: string[]; epoch: number[]; in_flight: number[]; lease_ms: number },
    { batch_id: string; shard_no: number; held: boolean; batch_status: string | null }
  >(
    `WITH f AS (
       SELECT * FROM unnest(@batch_id::text[], @shard_no::int[], @owner::text[], @epoch::int[], @completed::bigint[], @failed::bigint[],
         ${USAGE.map((c) => `@${c}::bigint[]`).join(', ')}, @in_flight::int[]) WITH ORDINALITY
         AS f(batch_id, shard_no, owner, epoch, completed, failed, ${USAGE.join(', ')}, in_flight, ord)),
     renewed AS (
       UPDATE batch_shards s SET lease_expires_at = ${NOW_MS} + @lease_ms::bigint, completed = f.completed, failed = f.failed,
         ${USAGE.map((c) => `${c} = f.${c}`).join(', ')}, in_flight = f.in_flight
       FROM f
       WHERE s.batch_id = f.batch_id AND s.shard_no = f.shard_no AND s.lease_owner = f.owner AND s.epoch = f.epoch AND s.state = 'leased'
       RETURNING s.batch_id, s.shard_no)
     SELECT f.batch_id, f.shard_no,
       EXISTS (SELECT 1 FROM renewed r WHERE r.batch_id = f.batch_id AND r.shard_no = f.shard_no) AS held,
       (SELECT b.status FROM batches b WHERE b.id = f.batch_id) AS batch_status
     FROM f ORDER BY f.ord`,
  ),
  renewBatches: sql<
    { id: string[]; owner: string[]; epoch: number[]; lease_ms: number },
    { id: string; held: boolean; batch_status: string | null }
  >(
    `WITH f AS (SELECT * FROM unnest(@id::text[], @owner::text[], @epoch::int[]) WITH ORDINALITY AS f(id, owner, epoch, ord)),
     renewed AS (
       UPDATE batches b SET lease_expires_at = ${NOW_MS} + @lease_ms::bigint
       FROM f WHERE b.id = f.id AND b.lease_owner = f.owner AND b.lease_epoch = f.epoch
       RETURNING b.id)
     SELECT f.id, EXISTS (SELECT 1 FROM renewed r WHERE r.id = f.id) AS held, (SELECT b.status FROM batches b WHERE b.id = f.id) AS batch_status
     FROM f ORDER BY f.ord`,
  ),

  releaseShard: sql<{
    batch_id: string;
    shard_no: number;
    owner: string;
    epoch: number;
    completed: number;
    failed: number;
    input_tokens: number;
    cached_tokens: number;
    output_tokens: number;
    reasoning_tokens: number;
    total_tokens: number;
    outcome: string | null;
  }>(
    `UPDATE batch_shards SET completed = @completed, failed = @failed, ${USAGE.map((c) => `${c} = @${c}`).join(', ')},
       in_flight = 0, lease_owner = NULL, lease_expires_at = NULL,
       state = CASE WHEN @outcome::text IS NULL THEN 'pending' ELSE 'done' END, outcome = @outcome
     WHERE batch_id = @batch_id AND shard_no = @shard_no AND lease_owner = @owner AND epoch = @epoch AND state = 'leased'`,
  ),
  remainingShards: sql<{ batch_id: string }, { n: number }>(`SELECT COUNT(*) AS n FROM batch_shards WHERE batch_id = @batch_id AND state <> 'done'`),
  listShards: sql<{ batch_id: string }, ShardRow>('SELECT * FROM batch_shards WHERE batch_id = @batch_id ORDER BY shard_no'),

  freeShards: sql(`UPDATE batch_shards SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, in_flight = 0 WHERE state = 'leased'`),
  freeBatches: sql(`UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL`),

  expireUnclaimed: sql<{ now: number }, BatchRow>(
    `WITH expired AS (
       UPDATE batches b SET status = 'expired', expired_at = @now
       WHERE b.status = 'validating' AND b.expires_at <= @now AND NOT ${liveLease('b', NOW_MS)}
       RETURNING b.*)
     SELECT ${LIVE} FROM expired b ORDER BY b.seq`,
  ),
  queued: sql<{ project: string | null; limit: number }, { id: string; project: string }>(
    `SELECT b.id, b.project FROM batches b
     WHERE b.status = 'validating' AND NOT ${liveLease('b', NOW_MS)} AND (@project::text IS NULL OR b.project = @project)
     ORDER BY b.seq LIMIT @limit`,
  ),
};
