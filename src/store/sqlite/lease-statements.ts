import type Database from 'better-sqlite3';

import type { Heartbeat, LeaseFence, ShardFence } from '../meta-store.js';
import { claimableSql, inFlightByProjectSql, leasesByProjectSql } from '../sql/claims.js';
import { USAGE_COLUMNS, type UsageColumn } from '../sql/columns.js';
import { claimableShard, liveLease } from '../sql/live-batch.js';
import type { ShardRow } from '../sql/rows.js';
import { RUN_SQL } from '../sql/statuses.js';
import { inJsonList, NOW } from './sqlite-db.js';

// The statements of batch and shard leases (postgres/lease-statements.ts is their twin), prepared
// once. Every lease time is `@now`, the store's clock. One process writes the file, so a claim
// needs no SKIP LOCKED: the IMMEDIATE transaction of the caller serialises it.

export interface ClaimableRow {
  id: string;
  project: string;
  status: string;
  created_at: number;
  expires_at: number;
  need: string;
  leased_shards: number;
}

type Now = { now: number };

/** The counters a heartbeat or a release writes to a shard. */
export type ShardCounters = { completed: number; failed: number } & Record<UsageColumn, number>;

const SET_COUNTERS = `completed = @completed, failed = @failed, ${USAGE_COLUMNS.map((c) => `${c} = @${c}`).join(', ')}`;
const HELD_SHARD = `batch_id = @batchId AND shard_no = @shardNo AND lease_owner = @owner AND epoch = @epoch AND state = 'leased'`;

export type LeaseStatements = ReturnType<typeof prepareLeaseStatements>;

export function prepareLeaseStatements(db: Database.Database) {
  return {
    claimable: db.prepare<Now & { limit: number }, ClaimableRow>(claimableSql(NOW, '@limit')),
    leasesByProject: db.prepare<Now, { project: string; n: number }>(leasesByProjectSql(NOW)),
    inFlightByProject: db.prepare<Now, { project: string; n: number }>(inFlightByProjectSql(NOW)),

    claimBatch: db.prepare<Now & { id: string; owner: string; lease: number; from: string }, { lease_epoch: number }>(
      `UPDATE batches AS b SET lease_owner = @owner, lease_epoch = lease_epoch + 1, lease_expires_at = @now + @lease
       WHERE b.id = @id AND ${inJsonList('b.status', '@from')} AND NOT ${liveLease('b', NOW)}
       RETURNING lease_epoch`,
    ),
    releaseBatch: db.prepare<LeaseFence>('UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE id = @batchId AND lease_owner = @owner AND lease_epoch = @epoch'),
    renewBatch: db.prepare<Now & LeaseFence & { lease: number }>(
      'UPDATE batches SET lease_expires_at = @now + @lease WHERE id = @batchId AND lease_owner = @owner AND lease_epoch = @epoch',
    ),

    claimShard: db.prepare<Now & { batchId: string; owner: string; lease: number }, ShardRow>(
      `UPDATE batch_shards SET state = 'leased', lease_owner = @owner, epoch = epoch + 1, lease_expires_at = @now + @lease, in_flight = 0
       WHERE batch_id = @batchId
         AND shard_no = (SELECT s.shard_no FROM batch_shards s WHERE s.batch_id = @batchId AND ${claimableShard('s', NOW)} ORDER BY s.shard_no LIMIT 1)
         AND EXISTS (SELECT 1 FROM batches WHERE id = @batchId AND status IN (${RUN_SQL}))
       RETURNING *`,
    ),
    renewShard: db.prepare<Now & ShardFence & ShardCounters & { lease: number; in_flight: number }>(
      `UPDATE batch_shards SET lease_expires_at = @now + @lease, ${SET_COUNTERS}, in_flight = @in_flight WHERE ${HELD_SHARD}`,
    ),
    releaseShard: db.prepare<ShardFence & ShardCounters & { outcome: string | null }>(
      `UPDATE batch_shards SET ${SET_COUNTERS}, in_flight = 0, lease_owner = NULL, lease_expires_at = NULL,
         state = CASE WHEN @outcome IS NULL THEN 'pending' ELSE 'done' END, outcome = @outcome
       WHERE ${HELD_SHARD}`,
    ),
    remainingShards: db.prepare<[string], number>(`SELECT COUNT(*) FROM batch_shards WHERE batch_id = ? AND state <> 'done'`).pluck(),
    listShards: db.prepare<[string], ShardRow>('SELECT * FROM batch_shards WHERE batch_id = ? ORDER BY shard_no'),
    batchStatus: db.prepare<[string], string>('SELECT status FROM batches WHERE id = ?').pluck(),

    upsertReplica: db.prepare<Now & Heartbeat['replica']>(
      `INSERT INTO replicas (id, host, pid, started_at, heartbeat_at, state, in_flight, worker_limit, version)
       VALUES (@id, @host, @pid, @startedAt, @now, @state, @inFlight, @workerLimit, @version)
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = @now, state = @state, in_flight = @inFlight, worker_limit = @workerLimit`,
    ),

    freeShards: db.prepare(`UPDATE batch_shards SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, in_flight = 0 WHERE state = 'leased'`),
    freeBatches: db.prepare('UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL'),

    expireUnclaimed: db.prepare<Now & { at: number }, { id: string }>(
      `UPDATE batches AS b SET status = 'expired', expired_at = @at
       WHERE b.status = 'validating' AND b.expires_at <= @at AND NOT ${liveLease('b', NOW)} RETURNING id`,
    ),
    queued: db.prepare<Now & { project: string | null; limit: number }, { id: string; project: string }>(
      `SELECT b.id, b.project FROM batches b
       WHERE b.status = 'validating' AND NOT ${liveLease('b', NOW)} AND (@project IS NULL OR b.project = @project)
       ORDER BY b.seq ASC LIMIT @limit`,
    ),
  };
}
