import { describe, expect, it } from 'vitest';

import { segmentKey } from '../../../src/store/blob-keys.js';
import type { ShardFence, ShardLease } from '../../../src/store/meta-store.js';
import type { ContractContext } from './context.js';
import { batchFixture, fileFixture, LONG_MS, PAST_SHORT_MS, replicaFixture, seedRunning, SHORT_MS, sleep, T0 } from './fixtures.js';

const fenceOf = (s: ShardLease): ShardFence => ({ batchId: s.batchId, shardNo: s.shardNo, owner: s.owner!, epoch: s.epoch });
const noUsage = { inputTokens: 0, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 };

export function deletionContract(t: ContractContext): void {
  describe('deleting batches', () => {
    it('deleteBatch removes the batch and its output/error file rows at once, returns it, and leaves a tombstone', async () => {
      const input = fileFixture();
      const output = fileFixture({ purpose: 'batch_output' });
      const errors = fileFixture({ purpose: 'batch_output' });
      const unrelated = fileFixture({ purpose: 'batch_output' });
      for (const f of [input, output, errors, unrelated]) await t.store.insertFile(f);
      const b = batchFixture({ project: 'alpha', inputFileId: input.id, status: 'completed', completedAt: T0 + 5, outputFileId: output.id, errorFileId: errors.id });
      const keep = batchFixture();
      await t.store.insertBatch(b);
      await t.store.insertBatch(keep);
      const before = Date.now();

      expect(await t.store.deleteBatch(b.id)).toEqual(b);
      expect(await t.store.getBatch(b.id)).toBeNull();
      expect((await t.store.listBatches({ limit: 10 })).data.map((x) => x.id)).toEqual([keep.id]);
      expect(await t.store.getFile(output.id)).toBeNull();
      expect(await t.store.getFile(errors.id)).toBeNull();
      // The input belongs to the client; other files stay.
      expect(await t.store.getFile(input.id)).toEqual(input);
      expect(await t.store.getFile(unrelated.id)).toEqual(unrelated);

      const [tomb, ...rest] = await t.store.listTombstones(10);
      expect(rest).toEqual([]);
      expect(tomb).toEqual({ id: b.id, project: 'alpha', deletedAt: tomb!.deletedAt, liveLeases: 0 });
      expect(Math.abs(tomb!.deletedAt - before)).toBeLessThan(60_000); // ms, by the store's clock
      expect(await t.store.deleteBatch(b.id)).toBeNull();
      expect(await t.store.deleteBatch('batch_unknown')).toBeNull();
      expect(await t.store.listTombstones(10)).toHaveLength(1);
    });

    it('a running batch deleted: its shards and segments stay until purged, its replicas see it gone, its live leases are counted', async () => {
      const b = await seedRunning(t.store, 3, { project: 'beta' });
      const s0 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      await t.store.claimShard(b.id, 'r2', SHORT_MS);
      await t.store.addSegment(fenceOf(s0), { kind: 'output', seq: 0, blobKey: segmentKey(b.id, 'output', 0, s0.epoch, 0), lines: null, bytes: null });
      await t.store.heartbeat({ replica: replicaFixture('r1'), leaseMs: LONG_MS, batches: [], shards: [{ ...fenceOf(s0), completed: 2, failed: 0, usage: noUsage, inFlight: 3 }] });

      const gone = await t.store.deleteBatch(b.id);
      // The record as read live before it went.
      expect(gone).toEqual({ ...b, requestCounts: { ...b.requestCounts, completed: 2 }, inFlight: 3 });
      const hb = await t.store.heartbeat({ replica: replicaFixture('r1'), leaseMs: LONG_MS, batches: [], shards: [{ ...fenceOf(s0), completed: 3, failed: 0, usage: noUsage, inFlight: 1 }] });
      expect(hb.shards).toEqual([{ batchId: b.id, shardNo: 0, held: true, batchStatus: null }]);
      expect(await t.store.claimShard(b.id, 'r3', LONG_MS)).toBeNull();
      expect(await t.store.listShards(b.id)).toHaveLength(3);
      expect(await t.store.listSegments(b.id)).toHaveLength(1);
      await sleep(PAST_SHORT_MS);
      expect(await t.store.listTombstones(10)).toEqual([expect.objectContaining({ id: b.id, project: 'beta', liveLeases: 1 })]);
      // Not claimable, and its leases count for no project.
      expect(await t.store.listClaimable(10)).toEqual({ batches: [], leasesByProject: {} });

      await t.store.releaseShard({ ...fenceOf(s0), completed: 3, failed: 0, usage: noUsage, outcome: 'cancelled' });
      expect(await t.store.listTombstones(10)).toEqual([expect.objectContaining({ id: b.id, liveLeases: 0 })]);
    });

    it('listTombstones lists oldest first, at most limit; purgeBatch forgets a deleted batch’s shards, segments and tombstone', async () => {
      const a = await seedRunning(t.store, 2);
      const b = await seedRunning(t.store, 1);
      const c = batchFixture();
      await t.store.insertBatch(c);
      const sa = fenceOf((await t.store.claimShard(a.id, 'r1', LONG_MS))!);
      await t.store.addSegment(sa, { kind: 'error', seq: 0, blobKey: segmentKey(a.id, 'error', 0, sa.epoch, 0), lines: 1, bytes: 10 });
      await t.store.deleteBatch(a.id);
      await sleep(5);
      await t.store.deleteBatch(b.id);
      await sleep(5);
      await t.store.deleteBatch(c.id);
      expect((await t.store.listTombstones(10)).map((x) => x.id)).toEqual([a.id, b.id, c.id]);
      expect((await t.store.listTombstones(2)).map((x) => x.id)).toEqual([a.id, b.id]);

      await t.store.purgeBatch(a.id);
      expect(await t.store.listShards(a.id)).toEqual([]);
      expect(await t.store.listSegments(a.id)).toEqual([]);
      expect((await t.store.listTombstones(10)).map((x) => x.id)).toEqual([b.id, c.id]);
      expect(await t.store.listShards(b.id)).toHaveLength(1);
      await expect(t.store.purgeBatch('batch_unknown')).resolves.toBeUndefined();
    });
  });
}
