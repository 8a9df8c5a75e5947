import { describe, expect, it } from 'vitest';

import type { ShardFence, ShardLease } from '../../../src/store/meta-store.js';
import type { ContractContext } from './context.js';
import { batchFixture, LONG_MS, PAST_SHORT_MS, replicaFixture, seedRunning, SHORT_MS, sleep, T0 } from './fixtures.js';

const fenceOf = (s: ShardLease): ShardFence => ({ batchId: s.batchId, shardNo: s.shardNo, owner: s.owner!, epoch: s.epoch });
const usage = (n: number) => ({ inputTokens: n, cachedTokens: n + 1, outputTokens: 2 * n, reasoningTokens: n + 2, totalTokens: 3 * n });

export function liveReadsContract(t: ContractContext): void {
  describe('live batch reads', () => {
    /** A running batch of 3 shards: 0 leased (progress 3/1, 2 in flight), 1 done (10/0), 2 leased briefly (lapsed, 4 in flight). */
    async function seedProgress(project = 'default') {
      const b = await seedRunning(t.store, 3, { project });
      const s0 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      const s1 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      const s2 = (await t.store.claimShard(b.id, 'r2', SHORT_MS))!;
      await t.store.heartbeat({
        replica: replicaFixture('r1'),
        leaseMs: LONG_MS,
        batches: [],
        shards: [{ ...fenceOf(s0), completed: 3, failed: 1, usage: usage(4), inFlight: 2 }],
      });
      await t.store.heartbeat({
        replica: replicaFixture('r2'),
        leaseMs: SHORT_MS,
        batches: [],
        shards: [{ ...fenceOf(s2), completed: 1, failed: 0, usage: usage(1), inFlight: 4 }],
      });
      await t.store.releaseShard({ ...fenceOf(s1), completed: 10, failed: 0, usage: usage(10), outcome: 'completed' });
      await sleep(PAST_SHORT_MS);
      return b;
    }
    const liveCounts = { total: 30, completed: 3 + 10 + 1, failed: 1 };
    const liveUsage = { inputTokens: 15, cachedTokens: 18, outputTokens: 30, reasoningTokens: 21, totalTokens: 45 };

    it('getBatch, listBatches and listBatchesPage sum the counters over the shards and in-flight over live shard leases', async () => {
      const b = await seedProgress();
      const live = { ...b, requestCounts: liveCounts, usage: liveUsage, inFlight: 2 };
      expect(await t.store.getBatch(b.id)).toEqual(live);
      expect((await t.store.listBatches({ limit: 10 })).data).toEqual([live]);
      expect((await t.store.listBatchesPage({ limit: 10, offset: 0 })).data).toEqual([live]);
      expect((await t.store.listBatchesPage({ limit: 10, offset: 0, status: 'in_progress' })).data).toEqual([live]);
      // A transition returns the batch as getBatch reads it.
      const cancelling = await t.store.transition(b.id, ['in_progress'], 'cancelling', T0 + 5);
      expect(cancelling).toEqual({ ...live, status: 'cancelling', cancellingAt: T0 + 5 });
      expect(await t.store.getBatch(b.id)).toEqual(cancelling);
    });

    it('a finished batch reads its stored counters, with nothing in flight', async () => {
      const b = await seedProgress();
      const final = { requestCounts: { total: 30, completed: 20, failed: 10 }, usage: usage(100) };
      const done = await t.store.transition(b.id, ['in_progress'], 'failed', T0 + 9, final);
      expect(done).toEqual({ ...b, ...final, status: 'failed', failedAt: T0 + 9, inFlight: 0 });
      expect(await t.store.getBatch(b.id)).toEqual(done);
      expect((await t.store.listBatches({ limit: 1 })).data).toEqual([done]);
    });

    it('the queued-requests quota counts what the shards have not answered yet', async () => {
      await seedProgress('alpha');
      // 30 requests, 15 answered over the shards.
      expect((await t.store.projectUsage('alpha')).queuedRequests).toBe(15);
      const quota = { maxActiveBatches: null, maxQueuedRequests: 20 };
      expect(await t.store.insertBatch(batchFixture({ project: 'alpha' }), { ...quota, requests: 6 })).toBe('maxQueuedRequests');
      expect(await t.store.insertBatch(batchFixture({ project: 'alpha' }), { ...quota, requests: 5 })).toBeNull();
    });
  });
}
