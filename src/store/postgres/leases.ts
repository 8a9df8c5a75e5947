import type pg from 'pg';

import type { BatchRecord, BatchStatus } from '../../domain/index.js';
import type {
  BatchLease,
  ClaimableWork,
  ClaimNeed,
  Heartbeat,
  HeartbeatResult,
  LeaseFence,
  ShardLease,
  ShardRecord,
  ShardRelease,
} from '../meta-store.js';
import { batchEvents, WORK_EVENT } from '../sql/events.js';
import { rowToBatch, rowToShard } from '../sql/rows.js';
import { usageParams } from '../sql/transition.js';
import { LEASES } from './lease-statements.js';
import { Db, LOCK, transaction } from './pg-db.js';

/** The lease verbs of PostgresMetaStore: batch leases, shard leases and the heartbeat that renews them. */
export class Leases {
  readonly #pool: pg.Pool;
  readonly #db: Db;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.#db = new Db(pool);
  }

  async listClaimable(limit: number): Promise<ClaimableWork> {
    const [rows, leases] = await Promise.all([this.#db.all(LEASES.claimable, { limit }), this.#db.all(LEASES.leasesByProject, {})]);
    return {
      batches: rows.map((r) => ({
        id: r.id,
        project: r.project,
        // These columns only ever hold values of the matching unions.
        status: r.status as BatchStatus,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        need: r.need as ClaimNeed,
        leasedShards: r.leased_shards,
      })),
      leasesByProject: Object.fromEntries(leases.map((l) => [l.project, l.n])),
    };
  }

  async inFlightByProject(): Promise<Record<string, number>> {
    return Object.fromEntries((await this.#db.all(LEASES.inFlightByProject, {})).map((r) => [r.project, r.n]));
  }

  async claimBatch(id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]): Promise<BatchLease | null> {
    const row = await this.#db.get(LEASES.claimBatch, { id, owner, lease_ms: Math.ceil(leaseMs), from: [...from] });
    return row === undefined ? null : { batch: rowToBatch(row), epoch: row.lease_epoch };
  }

  async releaseBatch(f: LeaseFence): Promise<boolean> {
    return (await this.#db.run(LEASES.releaseBatch, { id: f.batchId, owner: f.owner, epoch: f.epoch, work: JSON.stringify(WORK_EVENT) })) > 0;
  }

  async claimShard(batchId: string, owner: string, leaseMs: number): Promise<ShardLease | null> {
    const row = await this.#db.get(LEASES.claimShard, { batch_id: batchId, owner, lease_ms: Math.ceil(leaseMs) });
    if (row === undefined || row.batch === null) return null;
    return { ...rowToShard(row.shard), batch: rowToBatch(row.batch) };
  }

  async heartbeat(h: Heartbeat): Promise<HeartbeatResult> {
    const leaseMs = Math.ceil(h.leaseMs);
    return transaction(this.#pool, async (db) => {
      const r = h.replica;
      await db.run(LEASES.upsertReplica, {
        id: r.id,
        host: r.host,
        pid: r.pid,
        started_at: r.startedAt,
        state: r.state,
        in_flight: r.inFlight,
        worker_limit: r.workerLimit,
        version: r.version,
      });
      const shards =
        h.shards.length === 0
          ? []
          : await db.all(LEASES.renewShards, {
              lease_ms: leaseMs,
              batch_id: h.shards.map((s) => s.batchId),
              shard_no: h.shards.map((s) => s.shardNo),
              owner: h.shards.map((s) => s.owner),
              epoch: h.shards.map((s) => s.epoch),
              completed: h.shards.map((s) => s.completed),
              failed: h.shards.map((s) => s.failed),
              ...columns(h.shards.map((s) => usageParams(s.usage))),
              in_flight: h.shards.map((s) => s.inFlight),
            });
      const batches =
        h.batches.length === 0
          ? []
          : await db.all(LEASES.renewBatches, {
              lease_ms: leaseMs,
              id: h.batches.map((b) => b.batchId),
              owner: h.batches.map((b) => b.owner),
              epoch: h.batches.map((b) => b.epoch),
            });
      return {
        shards: shards.map((s) => ({ batchId: s.batch_id, shardNo: s.shard_no, held: s.held, batchStatus: s.batch_status as BatchStatus | null })),
        batches: batches.map((b) => ({ batchId: b.id, held: b.held, batchStatus: b.batch_status as BatchStatus | null })),
      };
    });
  }

  async releaseShard(r: ShardRelease): Promise<{ held: boolean; remaining: number }> {
    return transaction(this.#pool, async (db) => {
      // Serialises the releases of one batch's shards, so the count after each sees the others:
      // exactly one release sees 0 remaining (and finalizes).
      await db.run(LOCK.batch, { batch_id: r.batchId });
      const held =
        (await db.run(LEASES.releaseShard, {
          batch_id: r.batchId,
          shard_no: r.shardNo,
          owner: r.owner,
          epoch: r.epoch,
          completed: r.completed,
          failed: r.failed,
          ...usageParams(r.usage),
          outcome: r.outcome,
        })) > 0;
      const remaining = (await db.get(LEASES.remainingShards, { batch_id: r.batchId }))?.n ?? 0;
      // Given back, the shard may be claimed again; with none left, the batch may be finalized.
      if (held && (r.outcome === null || remaining === 0)) await db.notify([WORK_EVENT]);
      return { held, remaining };
    });
  }

  async listShards(batchId: string): Promise<ShardRecord[]> {
    return (await this.#db.all(LEASES.listShards, { batch_id: batchId })).map(rowToShard);
  }

  async releaseAll(): Promise<number> {
    return transaction(this.#pool, async (db) => {
      const freed = (await db.run(LEASES.freeShards, {})) + (await db.run(LEASES.freeBatches, {}));
      if (freed > 0) await db.notify([WORK_EVENT]);
      return freed;
    });
  }

  /** `onExpired` runs for each expired batch in the same transaction (its webhook deliveries). */
  async expireUnclaimed(now: number, onExpired?: (db: Db, batch: BatchRecord) => Promise<void>): Promise<BatchRecord[]> {
    return transaction(this.#pool, async (db) => {
      const expired = (await db.all(LEASES.expireUnclaimed, { now })).map(rowToBatch);
      if (onExpired) for (const b of expired) await onExpired(db, b);
      await db.notify(expired.flatMap((b) => batchEvents(b, b.status)));
      return expired;
    });
  }

  listQueued(project: string | undefined, limit: number): Promise<Array<{ id: string; project: string }>> {
    return this.#db.all(LEASES.queued, { project: project ?? null, limit });
  }
}

/** An array per key from a list of records with the same keys (unnest's parameters). */
function columns<K extends string>(records: ReadonlyArray<Record<K, number>>): Record<K, number[]> {
  const out = {} as Record<K, number[]>;
  for (const rec of records) for (const k of Object.keys(rec) as K[]) (out[k] ??= []).push(rec[k]);
  return out;
}
