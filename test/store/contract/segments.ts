import { describe, expect, it } from 'vitest';

import { segmentKey } from '../../../src/store/blob-keys.js';
import type { NewSegment, ShardFence, ShardLease } from '../../../src/store/meta-store.js';
import type { ContractContext } from './context.js';
import { LONG_MS, PAST_SHORT_MS, seedRunning, SHORT_MS, sleep } from './fixtures.js';

const fenceOf = (s: ShardLease): ShardFence => ({ batchId: s.batchId, shardNo: s.shardNo, owner: s.owner!, epoch: s.epoch });
const seg = (f: ShardFence, kind: 'output' | 'error', seq: number, sealed?: { lines: number; bytes: number }): NewSegment => ({
  kind,
  seq,
  blobKey: segmentKey(f.batchId, kind, f.shardNo, f.epoch, seq),
  lines: sealed?.lines ?? null,
  bytes: sealed?.bytes ?? null,
});

export function segmentsContract(t: ContractContext): void {
  describe('result segments', () => {
    it('registers segments only under the held shard lease, and lists them by kind, shard, epoch and seq', async () => {
      const b = await seedRunning(t.store, 2);
      const s0 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      const s1 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      const f0 = fenceOf(s0);
      const f1 = fenceOf(s1);
      const before = Date.now();
      expect(await t.store.addSegment(f1, seg(f1, 'output', 0))).toBe(true);
      expect(await t.store.addSegment(f0, seg(f0, 'output', 1, { lines: 5, bytes: 2 ** 35 }))).toBe(true);
      expect(await t.store.addSegment(f0, seg(f0, 'error', 0))).toBe(true);
      expect(await t.store.addSegment(f0, seg(f0, 'output', 0))).toBe(true);
      // Another owner or epoch, or a shard not leased, is refused.
      expect(await t.store.addSegment({ ...f0, owner: 'r2' }, seg(f0, 'output', 2))).toBe(false);
      expect(await t.store.addSegment({ ...f0, epoch: f0.epoch + 1 }, seg(f0, 'output', 3))).toBe(false);
      expect(await t.store.addSegment({ ...f0, shardNo: 7 }, seg(f0, 'output', 4))).toBe(false);

      const all = await t.store.listSegments(b.id);
      expect(all.map((s) => [s.kind, s.shardNo, s.epoch, s.seq])).toEqual([
        ['error', 0, 1, 0],
        ['output', 0, 1, 0],
        ['output', 0, 1, 1],
        ['output', 1, 1, 0],
      ]);
      const sealed = all[2]!;
      expect(sealed).toEqual({ batchId: b.id, ...seg(f0, 'output', 1, { lines: 5, bytes: 2 ** 35 }), shardNo: 0, epoch: 1, createdAt: sealed.createdAt });
      // Store-clock ms (the test runs on the database's machine, so the clocks roughly agree).
      expect(Math.abs(sealed.createdAt - before)).toBeLessThan(60_000);
      expect((await t.store.listSegments(b.id, { shardNo: 0 })).map((s) => [s.kind, s.seq])).toEqual([
        ['error', 0],
        ['output', 0],
        ['output', 1],
      ]);
      expect((await t.store.listSegments(b.id, { kind: 'output' })).map((s) => [s.shardNo, s.seq])).toEqual([
        [0, 0],
        [0, 1],
        [1, 0],
      ]);
      expect(await t.store.listSegments(b.id, { shardNo: 1, kind: 'error' })).toEqual([]);
      expect(await t.store.listSegments('batch_unknown')).toEqual([]);
    });

    it('refuses a segment once the shard is given back, done, or taken over (the old epoch is fenced out)', async () => {
      const b = await seedRunning(t.store, 2);
      const back = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      await t.store.releaseShard({ ...fenceOf(back), completed: 0, failed: 0, usage: back.usage, outcome: null });
      expect(await t.store.addSegment(fenceOf(back), seg(fenceOf(back), 'output', 0))).toBe(false);

      const old = (await t.store.claimShard(b.id, 'r1', SHORT_MS))!;
      expect(old.epoch).toBe(back.epoch + 1);
      expect(await t.store.addSegment(fenceOf(old), seg(fenceOf(old), 'output', 0))).toBe(true);
      await sleep(PAST_SHORT_MS);
      const next = (await t.store.claimShard(b.id, 'r2', LONG_MS))!;
      expect(next).toMatchObject({ shardNo: old.shardNo, epoch: old.epoch + 1 });
      expect(await t.store.addSegment(fenceOf(old), seg(fenceOf(old), 'output', 1))).toBe(false);
      expect(await t.store.addSegment(fenceOf(next), seg(fenceOf(next), 'output', 0))).toBe(true);
      // The new holder sees the old epoch's segment (to resume after it), and the old holder's second one never landed.
      expect((await t.store.listSegments(b.id, { shardNo: old.shardNo })).map((s) => [s.epoch, s.seq])).toEqual([
        [old.epoch, 0],
        [next.epoch, 0],
      ]);

      const done = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      await t.store.releaseShard({ ...fenceOf(done), completed: 10, failed: 0, usage: done.usage, outcome: 'completed' });
      expect(await t.store.addSegment(fenceOf(done), seg(fenceOf(done), 'output', 0))).toBe(false);
    });

    it('sealSegment records the final size of a segment of the fenced shard, of any epoch, only while the lease is held', async () => {
      const b = await seedRunning(t.store, 2);
      const old = (await t.store.claimShard(b.id, 'r1', SHORT_MS))!;
      const oldSeg = seg(fenceOf(old), 'output', 0);
      await t.store.addSegment(fenceOf(old), oldSeg);
      expect(await t.store.sealSegment(fenceOf(old), oldSeg.blobKey, 3, 300)).toBe(true);
      expect((await t.store.listSegments(b.id))[0]).toMatchObject({ blobKey: oldSeg.blobKey, lines: 3, bytes: 300 });
      await sleep(PAST_SHORT_MS);
      const next = (await t.store.claimShard(b.id, 'r2', LONG_MS))!;
      // The old holder may no longer seal; the new one seals the segment its predecessor left open.
      expect(await t.store.sealSegment(fenceOf(old), oldSeg.blobKey, 4, 400)).toBe(false);
      expect(await t.store.sealSegment(fenceOf(next), oldSeg.blobKey, 5, 2 ** 36)).toBe(true);
      expect((await t.store.listSegments(b.id))[0]).toMatchObject({ epoch: old.epoch, lines: 5, bytes: 2 ** 36 });
      // Another shard's fence does not reach this shard's segment.
      const other = (await t.store.claimShard(b.id, 'r2', LONG_MS))!;
      expect(other.shardNo).not.toBe(old.shardNo);
      expect(await t.store.sealSegment(fenceOf(other), oldSeg.blobKey, 9, 900)).toBe(false);
      expect((await t.store.listSegments(b.id))[0]).toMatchObject({ lines: 5 });
    });

    it('deleteSegments forgets every segment of one batch and says how many', async () => {
      const a = await seedRunning(t.store, 1);
      const b = await seedRunning(t.store, 1);
      const sa = fenceOf((await t.store.claimShard(a.id, 'r1', LONG_MS))!);
      const sb = fenceOf((await t.store.claimShard(b.id, 'r1', LONG_MS))!);
      for (let i = 0; i < 3; i++) await t.store.addSegment(sa, seg(sa, 'output', i));
      await t.store.addSegment(sb, seg(sb, 'error', 0));
      expect(await t.store.deleteSegments(a.id)).toBe(3);
      expect(await t.store.listSegments(a.id)).toEqual([]);
      expect(await t.store.listSegments(b.id)).toHaveLength(1);
      expect(await t.store.deleteSegments(a.id)).toBe(0);
    });
  });
}
