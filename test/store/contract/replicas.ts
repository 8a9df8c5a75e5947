import { describe, expect, it } from 'vitest';

import type { ShardFence, ShardLease } from '../../../src/store/meta-store.js';
import type { ContractContext } from './context.js';
import { batchFixture, LONG_MS, MEDIUM_MS, PAST_MEDIUM_MS, PAST_SHORT_MS, replicaFixture, seedRunning, SHORT_MS, sleep } from './fixtures.js';

const fenceOf = (s: ShardLease): ShardFence => ({ batchId: s.batchId, shardNo: s.shardNo, owner: s.owner!, epoch: s.epoch });
const progress = (inFlight: number) => ({ completed: 0, failed: 0, usage: { inputTokens: 0, cachedTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0 }, inFlight });

export function replicasContract(t: ContractContext): void {
  describe('replicas', () => {
    it('a heartbeat records its replica (store-clock time); listReplicas shows each with its live leases', async () => {
      const before = Date.now();
      const b = await seedRunning(t.store, 3);
      const s0 = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      await t.store.claimShard(b.id, 'r1', SHORT_MS);
      await t.store.claimShard(b.id, 'r2', LONG_MS);
      const v = batchFixture();
      await t.store.insertBatch(v);
      await t.store.claimBatch(v.id, 'r1', LONG_MS, ['validating']);
      await t.store.heartbeat({ replica: replicaFixture('r1', { inFlight: 5 }), leaseMs: LONG_MS, shards: [{ ...fenceOf(s0), ...progress(5) }], batches: [] });
      await t.store.heartbeat({ replica: replicaFixture('r2', { host: 'host-b', pid: 7, state: 'draining', workerLimit: 8, version: '0.2.0' }), leaseMs: LONG_MS, shards: [], batches: [] });
      await sleep(PAST_SHORT_MS);

      const replicas = await t.store.listReplicas(LONG_MS);
      expect(replicas.map((r) => [r.id, r.leases])).toEqual([
        ['r1', 2], // one shard lease lapsed; the batch lease counts
        ['r2', 1],
      ]);
      expect(replicas[1]).toEqual({ ...replicaFixture('r2', { host: 'host-b', pid: 7, state: 'draining', workerLimit: 8, version: '0.2.0' }), heartbeatAt: replicas[1]!.heartbeatAt, leases: 1 });
      expect(replicas[0]).toMatchObject({ inFlight: 5, startedAt: 1_700_000_000_000 });
      for (const r of replicas) expect(Math.abs(r.heartbeatAt - before)).toBeLessThan(60_000);

      // A later heartbeat replaces the row.
      const first = replicas[0]!.heartbeatAt;
      await t.store.heartbeat({ replica: replicaFixture('r1', { state: 'stopping', inFlight: 0 }), leaseMs: LONG_MS, shards: [], batches: [] });
      const again = (await t.store.listReplicas(LONG_MS)).find((r) => r.id === 'r1')!;
      expect(again).toMatchObject({ state: 'stopping', inFlight: 0 });
      expect(again.heartbeatAt).toBeGreaterThanOrEqual(first + PAST_SHORT_MS - 20);
    });

    it('listReplicas leaves out replicas silent for longer than `withinMs`; pruneReplicas forgets them', async () => {
      await t.store.heartbeat({ replica: replicaFixture('old'), leaseMs: LONG_MS, shards: [], batches: [] });
      await sleep(PAST_MEDIUM_MS);
      await t.store.heartbeat({ replica: replicaFixture('new'), leaseMs: LONG_MS, shards: [], batches: [] });
      expect((await t.store.listReplicas(MEDIUM_MS)).map((r) => r.id)).toEqual(['new']);
      expect((await t.store.listReplicas(LONG_MS)).map((r) => r.id)).toEqual(['new', 'old']);
      expect(await t.store.pruneReplicas(LONG_MS)).toBe(0);
      expect(await t.store.pruneReplicas(MEDIUM_MS)).toBe(1);
      expect((await t.store.listReplicas(LONG_MS)).map((r) => r.id)).toEqual(['new']);
    });

    it('inFlightByProject sums in-flight requests over live shard leases by the batch’s project', async () => {
      expect(await t.store.inFlightByProject()).toEqual({});
      const a = await seedRunning(t.store, 2, { project: 'alpha' });
      const a2 = await seedRunning(t.store, 1, { project: 'alpha' });
      const b = await seedRunning(t.store, 2, { project: 'beta' });
      const leases = [
        await t.store.claimShard(a.id, 'r1', LONG_MS),
        await t.store.claimShard(a.id, 'r2', LONG_MS),
        await t.store.claimShard(a2.id, 'r1', LONG_MS),
        await t.store.claimShard(b.id, 'r1', LONG_MS),
        await t.store.claimShard(b.id, 'r2', LONG_MS),
      ].map((s) => s!);
      const inFlight = [3, 4, 5, 6, 7];
      await t.store.heartbeat({ replica: replicaFixture('r1'), leaseMs: LONG_MS, batches: [], shards: leases.map((s, i) => ({ ...fenceOf(s), ...progress(inFlight[i]!) })).filter((s) => s.owner === 'r1') });
      await t.store.heartbeat({ replica: replicaFixture('r2'), leaseMs: MEDIUM_MS, batches: [], shards: leases.map((s, i) => ({ ...fenceOf(s), ...progress(inFlight[i]!) })).filter((s) => s.owner === 'r2') });
      expect(await t.store.inFlightByProject()).toEqual({ alpha: 3 + 4 + 5, beta: 6 + 7 });
      // r2's leases lapse; a shard given back has nothing in flight.
      await sleep(PAST_MEDIUM_MS);
      await t.store.releaseShard({ ...fenceOf(leases[2]!), ...progress(0), outcome: null });
      expect(await t.store.inFlightByProject()).toEqual({ alpha: 3, beta: 6 });
    });
  });
}
