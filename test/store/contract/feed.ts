import { describe, expect, it } from 'vitest';

import type { MetaStore, StoreEvent } from '../../../src/store/meta-store.js';
import type { ContractContext } from './context.js';
import { batchFixture, eventually, LONG_MS, seedRunning, T0 } from './fixtures.js';

/** Collects a store's events; `until` waits for one matching `e` (events may arrive a little later than the write). */
function record(store: MetaStore) {
  const events: StoreEvent[] = [];
  const stop = store.subscribe((e) => events.push(e));
  const has = (e: StoreEvent): boolean => events.some((x) => JSON.stringify(x) === JSON.stringify(e));
  return {
    events,
    stop,
    until: (e: StoreEvent) => eventually(() => has(e), 3_000, `event ${JSON.stringify(e)}`),
    count: (e: StoreEvent): number => events.filter((x) => JSON.stringify(x) === JSON.stringify(e)).length,
  };
}

export function feedContract(t: ContractContext): void {
  describe('change feed', () => {
    it('emits creations, status changes and deletions of batches, and work when something became claimable', async () => {
      const r = record(t.store);
      const b = batchFixture({ project: 'alpha' });
      await t.store.insertBatch(b);
      await r.until({ type: 'batch', id: b.id, project: 'alpha', status: 'validating' });
      await r.until({ type: 'work' });

      r.events.length = 0;
      await t.store.transition(b.id, ['validating'], 'in_progress', T0 + 1, { insertShards: [{ shardNo: 0, firstLine: 1, requests: 1, startByte: 0, endByte: 10 }] });
      await r.until({ type: 'batch', id: b.id, project: 'alpha', status: 'in_progress' });
      await r.until({ type: 'work' });

      r.events.length = 0;
      const s = (await t.store.claimShard(b.id, 'r1', LONG_MS))!;
      await t.store.releaseShard({ batchId: b.id, shardNo: 0, owner: 'r1', epoch: s.epoch, completed: 0, failed: 0, usage: s.usage, outcome: null });
      await r.until({ type: 'work' });

      await t.store.transition(b.id, ['in_progress'], 'cancelling', T0 + 2);
      await r.until({ type: 'batch', id: b.id, project: 'alpha', status: 'cancelling' });
      await t.store.transition(b.id, ['cancelling'], 'cancelled', T0 + 3);
      await r.until({ type: 'batch', id: b.id, project: 'alpha', status: 'cancelled' });
      await t.store.deleteBatch(b.id);
      await r.until({ type: 'batch_deleted', id: b.id, project: 'alpha' });

      const late = batchFixture({ project: 'beta', expiresAt: T0 });
      await t.store.insertBatch(late);
      await t.store.expireUnclaimed(T0 + 1);
      await r.until({ type: 'batch', id: late.id, project: 'beta', status: 'expired' });
      r.stop();
    });

    it('emits each event once, and none for a write that did not happen', async () => {
      const r = record(t.store);
      const b = batchFixture();
      await t.store.insertBatch(b);
      expect(await t.store.transition(b.id, ['in_progress'], 'finalizing', T0 + 1)).toBeNull();
      await expect(t.store.insertBatch(b)).rejects.toThrow();
      expect(await t.store.insertBatch(batchFixture(), { requests: 1, maxActiveBatches: 1, maxQueuedRequests: null })).toBe('maxActiveBatches');
      expect(await t.store.deleteBatch('batch_unknown')).toBeNull();
      // A sentinel after them: events arrive in order, so once it is here the others would be too.
      const sentinel = batchFixture();
      await t.store.insertBatch(sentinel);
      await r.until({ type: 'batch', id: sentinel.id, project: 'default', status: 'validating' });
      expect(r.count({ type: 'batch', id: b.id, project: 'default', status: 'validating' })).toBe(1);
      expect(r.events.flatMap((e) => (e.type === 'work' ? [] : [e.id]))).toEqual([b.id, sentinel.id]);
      r.stop();
    });

    it('unsubscribe stops the events; a throwing listener breaks neither the write nor the other listeners', async () => {
      const stopped = record(t.store);
      stopped.stop();
      const thrower = t.store.subscribe(() => {
        throw new Error('listener failure');
      });
      const r = record(t.store);
      const b = batchFixture();
      await expect(t.store.insertBatch(b)).resolves.toBeNull();
      await r.until({ type: 'batch', id: b.id, project: 'default', status: 'validating' });
      expect(await t.store.getBatch(b.id)).toEqual(b);
      expect(stopped.events).toEqual([]);
      thrower();
      r.stop();
    });

    it('with crossProcessFeed, another store instance’s writes arrive too', async (ctx) => {
      if (!t.store.capabilities.crossProcessFeed || !t.hasPeers) return ctx.skip();
      const peer = await t.peer();
      const here = record(t.store);
      const there = record(peer);
      const b = await seedRunning(peer, 1, { project: 'gamma' });
      await here.until({ type: 'batch', id: b.id, project: 'gamma', status: 'in_progress' });
      await t.store.transition(b.id, ['in_progress'], 'cancelling', T0 + 2);
      await there.until({ type: 'batch', id: b.id, project: 'gamma', status: 'cancelling' });
      // Each side hears each write once, its own included.
      await here.until({ type: 'batch', id: b.id, project: 'gamma', status: 'cancelling' });
      expect(here.count({ type: 'batch', id: b.id, project: 'gamma', status: 'in_progress' })).toBe(1);
      expect(there.count({ type: 'batch', id: b.id, project: 'gamma', status: 'in_progress' })).toBe(1);
      here.stop();
      there.stop();
    });
  });
}
