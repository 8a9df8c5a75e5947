import { describe, expect, it } from 'vitest';

import { emptyUsage } from '../../../src/domain/index.js';
import type { ShardFence, ShardLease } from '../../../src/store/meta-store.js';
import type { ContractContext } from './context.js';
import { batchFixture, LONG_MS, MEDIUM_MS, PAST_MEDIUM_MS, PAST_SHORT_MS, replicaFixture, seedRunning, SHORT_MS, sleep, T0 } from './fixtures.js';

const fenceOf = (s: ShardLease): ShardFence => ({ batchId: s.batchId, shardNo: s.shardNo, owner: s.owner!, epoch: s.epoch });
const usage = (n: number) => ({ inputTokens: n, cachedTokens: 1, outputTokens: 2 * n, reasoningTokens: 0, totalTokens: 3 * n });

export function leasesContract(t: ContractContext): void {
  describe('batch leases', () => {
    it('declares its capabilities as three flags', () => {
      const c = t.store.capabilities;
      expect(Object.keys(c).sort()).toEqual(['crossProcessFeed', 'singleReplica', 'skipLocked']);
      for (const v of Object.values(c)) expect(typeof v).toBe('boolean');
    });

    it('claimBatch takes a free lease in one of `from`, epoch 1, and returns the batch as getBatch reads it', async () => {
      const b = batchFixture();
      await t.store.insertBatch(b);
      expect(await t.store.claimBatch(b.id, 'r1', LONG_MS, ['in_progress'])).toBeNull();
      expect(await t.store.claimBatch('batch_unknown', 'r1', LONG_MS, ['validating'])).toBeNull();
      const lease = await t.store.claimBatch(b.id, 'r1', LONG_MS, ['validating', 'in_progress']);
      expect(lease).toEqual({ batch: b, epoch: 1 });
      expect(lease?.batch).toEqual(await t.store.getBatch(b.id));
      // Held: neither another replica nor the holder itself takes it again.
      expect(await t.store.claimBatch(b.id, 'r2', LONG_MS, ['validating'])).toBeNull();
      expect(await t.store.claimBatch(b.id, 'r1', LONG_MS, ['validating'])).toBeNull();
    });

    it('an expired batch lease is taken over with the next epoch; the old holder can no longer release or renew it', async () => {
      const b = batchFixture();
      await t.store.insertBatch(b);
      const first = (await t.store.claimBatch(b.id, 'r1', SHORT_MS, ['validating']))!;
      await sleep(PAST_SHORT_MS);
      const second = await t.store.claimBatch(b.id, 'r2', LONG_MS, ['validating']);
      expect(second?.epoch).toBe(first.epoch + 1);
      const stale = { batchId: b.id, owner: 'r1', epoch: first.epoch };
      expect(await t.store.releaseBatch(stale)).toBe(false);
      const hb = await t.store.heartbeat({ replica: replicaFixture('r1'), leaseMs: LONG_MS, shards: [], batches: [stale] });
      expect(hb.batches).toEqual([{ batchId: b.id, held: false, batchStatus: 'validating' }]);
      // The new holder's lease is untouched by the stale writes.
      expect(await t.store.claimBatch(b.id, 'r1', LONG_MS, ['validating'])).toBeNull();
    });

    it('releaseBatch gives the lease back once (owner and epoch must match); the next claim has the next epoch', async () => {
      const b = batchFixture();
      await t.store.insertBatch(b);
      const lease = (await t.store.claimBatch(b.id, 'r1', LONG_MS, ['validating']))!;
      expect(await t.store.releaseBatch({ batchId: b.id, owner: 'r2', epoch: lease.epoch })).toBe(false);
      expect(await t.store.releaseBatch({ batchId: b.id, owner: 'r1', epoch: lease.epoch + 1 })).toBe(false);
      expect(await t.store.releaseBatch({ batchId: b.id, owner: 'r1', epoch: lease.epoch })).toBe(true);
      expect(await t.store.releaseBatch({ batchId: b.id, owner: 'r1', epoch: lease.epoch })).toBe(false);
      expect((await t.store.getBatch(b.id))?.status).toBe('validating');
      expect((await t.store.claimBatch(b.id, 'r2', LONG_MS, ['validating']))?.epoch).toBe(lease.epoch + 1);
    });

    it('gives a batch lease to exactly one of many concurrent claimers', async () => {
      const b = batchFixture();
      await t.store.insertBatch(b);
      const claims = await Promise.all(Array.from({ length: 6 }, (_, i) => t.store.claimBatch(b.id, `r${i}`, LONG_MS, ['validating'])));
      expect(claims.filter((c) => c !== null)).toHaveLength(1);
    });
  });

  describe('shard leases', () => {
    it('claimShard takes the lowest-numbered claimable shard, epoch 1, with the batch read live', async () => {
      const b = await seedRunning(t.store, 3);
      const s0 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      expect(s0).toMatchObject({ batchId: b.id, shardNo: 0, state: 'leased', owner: 'r1', epoch: 1, inFlight: 0, outcome: null, completed: 0 });
      expect(s0.leaseExpiresAt).toBeGreaterThan(0);
      expect(s0.batch).toEqual(b);
      const s1 = await t.store.claimShard(b.id, 'r2', LONG_MS);
      const s2 = await t.store.claimShard(b.id, 'r1', LONG_MS);
      expect([s1?.shardNo, s2?.shardNo]).toEqual([1, 2]);
      expect(await t.store.claimShard(b.id, 'r3', LONG_MS)).toBeNull();
      expect(await t.store.claimShard('batch_unknown', 'r3', LONG_MS)).toBeNull();
      const listed = await t.store.listShards(b.id);
      expect(listed.map((s) => [s.shardNo, s.state, s.owner, s.epoch])).toEqual([
        [0, 'leased', 'r1', 1],
        [1, 'leased', 'r2', 1],
        [2, 'leased', 'r1', 1],
      ]);
      const { batch: _batch, ...shard0 } = s0;
      expect(listed[0]).toEqual(shard0);
    });

    it('claims shards only while the batch is in_progress or cancelling', async () => {
      const b = await seedRunning(t.store, 3);
      await t.store.transition(b.id, ['in_progress'], 'cancelling', T0 + 2);
      expect((await t.store.claimShard(b.id, 'r1', LONG_MS))?.batch.status).toBe('cancelling');
      await t.store.transition(b.id, ['cancelling'], 'failed', T0 + 3);
      expect(await t.store.claimShard(b.id, 'r1', LONG_MS)).toBeNull();
      const f = await seedRunning(t.store, 2);
      await t.store.transition(f.id, ['in_progress'], 'finalizing', T0 + 2);
      expect(await t.store.claimShard(f.id, 'r1', LONG_MS)).toBeNull();
    });

    it('never gives one shard to two concurrent claimers', async () => {
      const b = await seedRunning(t.store, 4);
      const claims = await Promise.all(Array.from({ length: 7 }, (_, i) => t.store.claimShard(b.id, `r${i}`, LONG_MS)));
      const got = claims.filter((c) => c !== null).map((c) => c.shardNo);
      expect(got.sort()).toEqual([0, 1, 2, 3]);
    });

    it('an expired shard lease is taken over with the next epoch and in_flight reset; the old holder is fenced out', async () => {
      const b = await seedRunning(t.store, 2);
      const old = (await t.store.claimShard(b.id, 'r1', MEDIUM_MS))!;
      await t.store.heartbeat({ replica: replicaFixture('r1'), leaseMs: MEDIUM_MS, batches: [], shards: [{ ...fenceOf(old), completed: 3, failed: 1, usage: usage(5), inFlight: 4 }] });
      expect(await t.store.claimShard(b.id, 'r2', LONG_MS)).toMatchObject({ shardNo: 1 });
      await sleep(PAST_MEDIUM_MS);
      const taken = (await t.store.claimShard(b.id, 'r2', LONG_MS))!;
      // The counters saved so far stay (the new holder resumes from the segments); in-flight ones were the old holder's.
      expect(taken).toMatchObject({ shardNo: 0, owner: 'r2', epoch: old.epoch + 1, inFlight: 0, completed: 3, failed: 1, state: 'leased' });
      const hb = await t.store.heartbeat({ replica: replicaFixture('r1'), leaseMs: LONG_MS, batches: [], shards: [{ ...fenceOf(old), completed: 9, failed: 0, usage: usage(9), inFlight: 9 }] });
      expect(hb.shards).toEqual([{ batchId: b.id, shardNo: 0, held: false, batchStatus: 'in_progress' }]);
      expect(await t.store.releaseShard({ ...fenceOf(old), completed: 9, failed: 0, usage: usage(9), outcome: 'completed' })).toEqual({ held: false, remaining: 2 });
      expect((await t.store.listShards(b.id))[0]).toMatchObject({ owner: 'r2', epoch: old.epoch + 1, completed: 3, state: 'leased' });
    });

    it('heartbeat renews held leases (saving the shard counters) and reports each with its batch status, in order', async () => {
      const b = await seedRunning(t.store, 2);
      const other = await seedRunning(t.store, 1);
      const s0 = (await t.store.claimShard(b.id, 'r1', SHORT_MS))!;
      const s1 = (await t.store.claimShard(b.id, 'r1', SHORT_MS))!;
      const o0 = (await t.store.claimShard(other.id, 'r1', SHORT_MS))!;
      const v = batchFixture();
      await t.store.insertBatch(v);
      const bl = (await t.store.claimBatch(v.id, 'r1', SHORT_MS, ['validating']))!;
      await t.store.transition(other.id, ['in_progress'], 'cancelling', T0 + 2);

      const res = await t.store.heartbeat({
        replica: replicaFixture('r1'),
        leaseMs: LONG_MS,
        shards: [
          { ...fenceOf(s1), completed: 4, failed: 1, usage: usage(7), inFlight: 3 },
          { ...fenceOf(o0), completed: 0, failed: 0, usage: emptyUsage(), inFlight: 1 },
          { ...fenceOf(s0), epoch: s0.epoch + 1, completed: 8, failed: 8, usage: usage(8), inFlight: 8 },
        ],
        batches: [
          { batchId: v.id, owner: 'r1', epoch: bl.epoch },
          { batchId: 'batch_unknown', owner: 'r1', epoch: 1 },
        ],
      });
      expect(res).toEqual({
        shards: [
          { batchId: b.id, shardNo: 1, held: true, batchStatus: 'in_progress' },
          { batchId: other.id, shardNo: 0, held: true, batchStatus: 'cancelling' },
          { batchId: b.id, shardNo: 0, held: false, batchStatus: 'in_progress' },
        ],
        batches: [
          { batchId: v.id, held: true, batchStatus: 'validating' },
          { batchId: 'batch_unknown', held: false, batchStatus: null },
        ],
      });
      const [shard0, shard1] = await t.store.listShards(b.id);
      expect(shard1).toMatchObject({ completed: 4, failed: 1, usage: usage(7), inFlight: 3 });
      // The refused fence saved nothing.
      expect(shard0).toMatchObject({ completed: 0, failed: 0, inFlight: 0, epoch: s0.epoch });

      // Renewed for LONG_MS: the short leases would have expired by now; the unrenewed one has.
      await sleep(PAST_SHORT_MS);
      expect(await t.store.claimBatch(v.id, 'r2', LONG_MS, ['validating'])).toBeNull();
      expect(await t.store.claimShard(other.id, 'r2', LONG_MS)).toBeNull();
      expect((await t.store.claimShard(b.id, 'r2', LONG_MS))?.shardNo).toBe(0);
    });

    it('heartbeat with no leases only records the replica', async () => {
      expect(await t.store.heartbeat({ replica: replicaFixture('r9'), leaseMs: LONG_MS, shards: [], batches: [] })).toEqual({ shards: [], batches: [] });
      expect((await t.store.listReplicas(LONG_MS)).map((r) => r.id)).toEqual(['r9']);
    });

    it('releaseShard with no outcome puts the shard back (epoch kept, in_flight 0, counters saved) to be claimed with the next epoch', async () => {
      const b = await seedRunning(t.store, 2);
      const s = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      await t.store.heartbeat({ replica: replicaFixture('r1'), leaseMs: LONG_MS, batches: [], shards: [{ ...fenceOf(s), completed: 1, failed: 0, usage: usage(1), inFlight: 5 }] });
      expect(await t.store.releaseShard({ ...fenceOf(s), completed: 2, failed: 1, usage: usage(3), outcome: null })).toEqual({ held: true, remaining: 2 });
      const { batch: _batch, ...claimed } = s;
      expect((await t.store.listShards(b.id))[0]).toEqual({
        ...claimed,
        state: 'pending',
        owner: null,
        leaseExpiresAt: null,
        completed: 2,
        failed: 1,
        usage: usage(3),
        inFlight: 0,
        outcome: null,
      });
      expect(await t.store.releaseShard({ ...fenceOf(s), completed: 2, failed: 1, usage: usage(3), outcome: null })).toEqual({ held: false, remaining: 2 });
      expect(await t.store.claimShard(b.id, 'r2', LONG_MS)).toMatchObject({ shardNo: 0, epoch: s.epoch + 1, owner: 'r2', completed: 2 });
    });

    it('releaseShard with an outcome marks it done; `remaining` counts the shards not done, and the last release sees 0', async () => {
      const b = await seedRunning(t.store, 3);
      const [a, c, d] = [await t.store.claimShard(b.id, 'r1', LONG_MS), await t.store.claimShard(b.id, 'r2', LONG_MS), await t.store.claimShard(b.id, 'r1', LONG_MS)];
      expect(await t.store.releaseShard({ ...fenceOf(c!), completed: 10, failed: 0, usage: usage(10), outcome: 'completed' })).toEqual({ held: true, remaining: 2 });
      expect(await t.store.releaseShard({ ...fenceOf(a!), completed: 4, failed: 0, usage: usage(4), outcome: 'cancelled' })).toEqual({ held: true, remaining: 1 });
      expect(await t.store.releaseShard({ ...fenceOf(d!), completed: 2, failed: 8, usage: usage(2), outcome: 'expired' })).toEqual({ held: true, remaining: 0 });
      const shards = await t.store.listShards(b.id);
      expect(shards.map((s) => [s.state, s.outcome, s.owner, s.leaseExpiresAt, s.inFlight])).toEqual([
        ['done', 'cancelled', null, null, 0],
        ['done', 'completed', null, null, 0],
        ['done', 'expired', null, null, 0],
      ]);
      // A done shard is never claimed again, and a release of it is refused.
      expect(await t.store.claimShard(b.id, 'r3', LONG_MS)).toBeNull();
      expect(await t.store.releaseShard({ ...fenceOf(d!), completed: 0, failed: 0, usage: usage(0), outcome: null })).toEqual({ held: false, remaining: 0 });
      expect(shards[2]).toMatchObject({ completed: 2, failed: 8 });
    });

    it('releaseAllLeases frees every shard and batch lease (returning how many) and leaves done shards done', async () => {
      const b = await seedRunning(t.store, 3);
      const s0 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      await t.store.claimShard(b.id, 'r2', LONG_MS);
      await t.store.releaseShard({ ...fenceOf(s0), completed: 10, failed: 0, usage: usage(1), outcome: 'completed' });
      await t.store.claimShard(b.id, 'r2', LONG_MS);
      const v = batchFixture();
      await t.store.insertBatch(v);
      await t.store.claimBatch(v.id, 'r1', LONG_MS, ['validating']);
      expect(await t.store.releaseAllLeases()).toBe(3);
      expect((await t.store.listShards(b.id)).map((s) => [s.state, s.owner])).toEqual([
        ['done', null],
        ['pending', null],
        ['pending', null],
      ]);
      expect((await t.store.claimBatch(v.id, 'r3', LONG_MS, ['validating']))?.epoch).toBe(2);
      expect((await t.store.claimShard(b.id, 'r3', LONG_MS))?.epoch).toBe(2);
      expect(await t.store.releaseAllLeases()).toBe(2);
      expect(await t.store.releaseAllLeases()).toBe(0);
    });
  });

  describe('waiting batches', () => {
    it('expireUnclaimed moves validating batches past expires_at with no live batch lease to expired, and returns them', async () => {
      const due = batchFixture({ expiresAt: T0 + 10 });
      const edge = batchFixture({ expiresAt: T0 + 20 });
      const later = batchFixture({ expiresAt: T0 + 21 });
      const leased = batchFixture({ expiresAt: T0 + 10 });
      const lapsed = batchFixture({ expiresAt: T0 + 10 });
      const running = batchFixture({ status: 'in_progress', expiresAt: T0 + 10 });
      for (const b of [due, edge, later, leased, lapsed, running]) await t.store.insertBatch(b);
      await t.store.claimBatch(leased.id, 'r1', LONG_MS, ['validating']);
      await t.store.claimBatch(lapsed.id, 'r1', SHORT_MS, ['validating']);
      await sleep(PAST_SHORT_MS);

      const expired = await t.store.expireUnclaimed(T0 + 20);
      expect(expired.map((b) => b.id).sort()).toEqual([due.id, edge.id, lapsed.id].sort());
      expect(expired.find((b) => b.id === due.id)).toEqual({ ...due, status: 'expired', expiredAt: T0 + 20 });
      expect((await t.store.getBatch(edge.id))?.status).toBe('expired');
      for (const b of [later, leased]) expect((await t.store.getBatch(b.id))?.status).toBe('validating');
      expect((await t.store.getBatch(running.id))?.status).toBe('in_progress');
      expect(await t.store.expireUnclaimed(T0 + 20)).toEqual([]);
    });

    it('listQueuedBatches lists validating batches with no live batch lease, oldest first, by project, at most limit', async () => {
      const a1 = batchFixture({ project: 'alpha' });
      const b1 = batchFixture({ project: 'beta' });
      const a2 = batchFixture({ project: 'alpha' });
      const aLeased = batchFixture({ project: 'alpha' });
      const aLapsed = batchFixture({ project: 'alpha' });
      const aRunning = batchFixture({ project: 'alpha', status: 'in_progress' });
      for (const b of [a1, b1, a2, aLeased, aLapsed, aRunning]) await t.store.insertBatch(b);
      await t.store.claimBatch(aLeased.id, 'r1', LONG_MS, ['validating']);
      await t.store.claimBatch(aLapsed.id, 'r1', SHORT_MS, ['validating']);
      await sleep(PAST_SHORT_MS);
      const pair = (b: { id: string; project: string }) => ({ id: b.id, project: b.project });
      expect(await t.store.listQueuedBatches(undefined, 10)).toEqual([a1, b1, a2, aLapsed].map(pair));
      expect(await t.store.listQueuedBatches('alpha', 10)).toEqual([a1, a2, aLapsed].map(pair));
      expect(await t.store.listQueuedBatches('alpha', 2)).toEqual([a1, a2].map(pair));
      expect(await t.store.listQueuedBatches('gamma', 10)).toEqual([]);
      expect(await t.store.listQueuedBatches(undefined, 0)).toEqual([]);
    });
  });

  describe('listClaimable', () => {
    it('lists, oldest first, batches to validate, to run and to finalize, with their live shard leases', async () => {
      const validate = batchFixture({ project: 'alpha' });
      await t.store.insertBatch(validate);
      const validating = batchFixture({ project: 'alpha' });
      await t.store.insertBatch(validating);
      await t.store.claimBatch(validating.id, 'r1', LONG_MS, ['validating']);
      const run = await seedRunning(t.store, 3, { project: 'beta' });
      await t.store.claimShard(run.id, 'r1', LONG_MS);
      const busy = await seedRunning(t.store, 1, { project: 'beta' });
      await t.store.claimShard(busy.id, 'r2', LONG_MS);
      const done = await seedRunning(t.store, 2, { project: 'alpha' });
      for (let i = 0; i < 2; i++) {
        const s = (await t.store.claimShard(done.id, 'r1', LONG_MS))!;
        await t.store.releaseShard({ ...fenceOf(s), completed: 10, failed: 0, usage: usage(1), outcome: 'completed' });
      }
      const cancelling = await seedRunning(t.store, 2, { project: 'gamma' });
      await t.store.transition(cancelling.id, ['in_progress'], 'cancelling', T0 + 2);
      const cancelledEarly = batchFixture({ project: 'gamma' });
      await t.store.insertBatch(cancelledEarly);
      await t.store.transition(cancelledEarly.id, ['validating'], 'cancelling', T0 + 2);
      const finalizing = batchFixture({ project: 'gamma', status: 'finalizing' });
      await t.store.insertBatch(finalizing);
      const finalizingHeld = batchFixture({ project: 'gamma', status: 'finalizing' });
      await t.store.insertBatch(finalizingHeld);
      await t.store.claimBatch(finalizingHeld.id, 'r2', LONG_MS, ['finalizing']);
      await t.store.insertBatch(batchFixture({ status: 'completed' }));

      const work = await t.store.listClaimable(100);
      expect(work.batches.map((b) => [b.id, b.need, b.leasedShards])).toEqual([
        [validate.id, 'validate', 0],
        [run.id, 'run', 1],
        [done.id, 'finalize', 0],
        [cancelling.id, 'run', 0],
        [cancelledEarly.id, 'finalize', 0],
        [finalizing.id, 'finalize', 0],
      ]);
      expect(work.batches[1]).toEqual({ id: run.id, project: 'beta', status: 'in_progress', createdAt: run.createdAt, expiresAt: run.expiresAt, need: 'run', leasedShards: 1 });
      expect(work.batches[4]?.status).toBe('cancelling');
      // Live leases per project, on every batch listed or not: alpha's batch lease; beta's two shards; gamma's batch lease.
      expect(work.leasesByProject).toEqual({ alpha: 1, beta: 2, gamma: 1 });
      expect((await t.store.listClaimable(2)).batches.map((b) => b.id)).toEqual([validate.id, run.id]);
    });

    it('a lapsed lease makes its batch or shard claimable again and stops counting as live', async () => {
      const v = batchFixture({ project: 'alpha' });
      await t.store.insertBatch(v);
      const r = await seedRunning(t.store, 1, { project: 'beta' });
      await t.store.claimBatch(v.id, 'r1', MEDIUM_MS, ['validating']);
      await t.store.claimShard(r.id, 'r1', MEDIUM_MS);
      const before = await t.store.listClaimable(10);
      expect(before.batches).toEqual([]);
      expect(before.leasesByProject).toEqual({ alpha: 1, beta: 1 });
      await sleep(PAST_MEDIUM_MS);
      const after = await t.store.listClaimable(10);
      expect(after.batches.map((b) => [b.id, b.need, b.leasedShards])).toEqual([
        [v.id, 'validate', 0],
        [r.id, 'run', 0],
      ]);
      expect(after.leasesByProject).toEqual({});
    });
  });
}
