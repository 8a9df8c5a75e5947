import type Database from 'better-sqlite3';

import type { BatchRecord, BatchStatus } from '../../domain/index.js';
import type { LocalFeed } from '../local-feed.js';
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
import { WORK_EVENT } from '../sql/events.js';
import { whole } from '../sql/paging.js';
import { rowToShard } from '../sql/rows.js';
import { usageParams } from '../sql/transition.js';
import { type LeaseStatements, prepareLeaseStatements, type ShardCounters } from './lease-statements.js';

const counters = (p: { completed: number; failed: number; usage: ShardRelease['usage'] }): ShardCounters => ({
  completed: p.completed,
  failed: p.failed,
  ...usageParams(p.usage),
});

/**
 * The lease verbs of SqliteMetaStore (postgres/leases.ts is their twin): batch leases, shard leases
 * and the heartbeat that renews them. Each runs synchronously (the store settles it); a write that
 * spans statements is one IMMEDIATE transaction, and its events are emitted after it commits.
 */
export class Leases {
  readonly #s: LeaseStatements;
  readonly #feed: LocalFeed;
  readonly #now: () => number;
  readonly #claimBatch: Database.Transaction<(id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]) => BatchLease | null>;
  readonly #claimShard: Database.Transaction<(batchId: string, owner: string, leaseMs: number) => ShardLease | null>;
  readonly #heartbeat: Database.Transaction<(h: Heartbeat) => HeartbeatResult>;
  readonly #releaseShard: Database.Transaction<(r: ShardRelease) => { held: boolean; remaining: number }>;
  readonly #releaseAll: Database.Transaction<() => number>;

  /** `liveBatch` reads a batch as getBatch does, inside the caller's transaction. */
  constructor(db: Database.Database, now: () => number, feed: LocalFeed, liveBatch: (id: string) => BatchRecord | null) {
    const s = prepareLeaseStatements(db);
    this.#s = s;
    this.#feed = feed;
    this.#now = now;
    this.#claimBatch = db.transaction((id, owner, leaseMs, from) => {
      const epoch = s.claimBatch.get({ now: now(), id, owner, lease: leaseMs, from: JSON.stringify(from) })?.lease_epoch;
      const batch = epoch === undefined ? null : liveBatch(id);
      return epoch === undefined || batch === null ? null : { batch, epoch };
    });
    this.#claimShard = db.transaction((batchId, owner, leaseMs) => {
      const row = s.claimShard.get({ now: now(), batchId, owner, lease: leaseMs });
      const batch = row === undefined ? null : liveBatch(batchId);
      return row === undefined || batch === null ? null : { ...rowToShard(row), batch };
    });
    this.#heartbeat = db.transaction((h) => {
      const t = now();
      s.upsertReplica.run({ now: t, ...h.replica });
      const statusOf = (id: string): BatchStatus | null => (s.batchStatus.get(id) as BatchStatus | undefined) ?? null;
      return {
        shards: h.shards.map((f) => ({
          batchId: f.batchId,
          shardNo: f.shardNo,
          held:
            s.renewShard.run({ now: t, lease: h.leaseMs, batchId: f.batchId, shardNo: f.shardNo, owner: f.owner, epoch: f.epoch, in_flight: f.inFlight, ...counters(f) })
              .changes > 0,
          batchStatus: statusOf(f.batchId),
        })),
        batches: h.batches.map((f) => ({
          batchId: f.batchId,
          held: s.renewBatch.run({ now: t, lease: h.leaseMs, batchId: f.batchId, owner: f.owner, epoch: f.epoch }).changes > 0,
          batchStatus: statusOf(f.batchId),
        })),
      };
    });
    this.#releaseShard = db.transaction((r) => {
      const held = s.releaseShard.run({ batchId: r.batchId, shardNo: r.shardNo, owner: r.owner, epoch: r.epoch, outcome: r.outcome, ...counters(r) }).changes > 0;
      return { held, remaining: s.remainingShards.get(r.batchId) ?? 0 };
    });
    this.#releaseAll = db.transaction(() => s.freeShards.run().changes + s.freeBatches.run().changes);
  }

  listClaimable(limit: number): ClaimableWork {
    const now = this.#now();
    return {
      batches: this.#s.claimable.all({ now, limit: whole(limit) }).map((r) => ({
        id: r.id,
        project: r.project,
        // These columns only ever hold values of the matching unions.
        status: r.status as BatchStatus,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        need: r.need as ClaimNeed,
        leasedShards: r.leased_shards,
      })),
      leasesByProject: Object.fromEntries(this.#s.leasesByProject.all({ now }).map((r) => [r.project, r.n])),
    };
  }

  inFlightByProject(): Record<string, number> {
    return Object.fromEntries(this.#s.inFlightByProject.all({ now: this.#now() }).map((r) => [r.project, r.n]));
  }

  claimBatch(id: string, owner: string, leaseMs: number, from: readonly BatchStatus[]): BatchLease | null {
    return this.#claimBatch.immediate(id, owner, leaseMs, from);
  }

  /** The batch may be claimed again: `work`. */
  releaseBatch(fence: LeaseFence): boolean {
    const released = this.#s.releaseBatch.run(fence).changes > 0;
    if (released) this.#feed.emit(WORK_EVENT);
    return released;
  }

  claimShard(batchId: string, owner: string, leaseMs: number): ShardLease | null {
    return this.#claimShard.immediate(batchId, owner, leaseMs);
  }

  heartbeat(h: Heartbeat): HeartbeatResult {
    return this.#heartbeat.immediate(h);
  }

  /** A shard given back (no outcome) may be claimed again: `work`. The release that sees 0 remaining finalizes the batch itself. */
  releaseShard(r: ShardRelease): { held: boolean; remaining: number } {
    const result = this.#releaseShard.immediate(r);
    if (result.held && r.outcome === null) this.#feed.emit(WORK_EVENT);
    return result;
  }

  listShards(batchId: string): ShardRecord[] {
    return this.#s.listShards.all(batchId).map(rowToShard);
  }

  releaseAll(): number {
    return this.#releaseAll.immediate();
  }

  /** Moves the validating batches due by `at` (and not leased) to expired, inside the caller's transaction; returns their ids. */
  expireUnclaimed(at: number): string[] {
    return this.#s.expireUnclaimed.all({ now: this.#now(), at }).map((r) => r.id);
  }

  listQueued(project: string | undefined, limit: number): Array<{ id: string; project: string }> {
    return this.#s.queued.all({ now: this.#now(), project: project ?? null, limit: whole(limit) });
  }
}
