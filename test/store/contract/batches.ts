import { describe, expect, it } from 'vitest';

import { BATCH_STATUSES, type BatchRecord, isTerminal, newFileId } from '../../../src/domain/index.js';
import type { ContractContext } from './context.js';
import { batchFixture, ids, T0 } from './fixtures.js';

export function batchesContract(t: ContractContext): void {
  async function seedBatches(n: number, overrides: (i: number) => Partial<BatchRecord> = () => ({})): Promise<BatchRecord[]> {
    const batches: BatchRecord[] = [];
    for (let i = 0; i < n; i++) {
      const b = batchFixture(overrides(i));
      await t.store.insertBatch(b);
      batches.push(b);
    }
    return batches;
  }

  describe('batches', () => {
    it('round-trips a batch with every field set', async () => {
      const full = batchFixture({
        status: 'completed',
        model: 'gpt-4o-mini',
        metadata: { project: 'x', 'with "quotes"': 'ü' },
        errors: [
          { code: 'invalid_json', message: 'bad line', param: null, line: 3 },
          { code: 'missing_required_parameter', message: 'no model', param: 'body.model', line: null },
        ],
        outputFileId: newFileId(),
        errorFileId: newFileId(),
        inProgressAt: T0 + 1,
        finalizingAt: T0 + 2,
        completedAt: T0 + 3,
        failedAt: T0 + 4,
        expiredAt: T0 + 5,
        cancellingAt: T0 + 6,
        cancelledAt: T0 + 7,
        requestCounts: { total: 10, completed: 7, failed: 3 },
        usage: { inputTokens: 100, cachedTokens: 20, outputTokens: 50, reasoningTokens: 5, totalTokens: 2 ** 41 },
        outputExpiresAfter: 3600,
      });
      const plain = batchFixture();
      await t.store.insertBatch(full);
      await t.store.insertBatch(plain);
      expect(await t.store.getBatch(full.id)).toEqual(full);
      expect(await t.store.getBatch(plain.id)).toEqual(plain);
    });

    it('keeps empty metadata and empty errors distinct from null', async () => {
      const b = batchFixture({ metadata: {}, errors: [] });
      await t.store.insertBatch(b);
      expect(await t.store.getBatch(b.id)).toEqual(b);
    });

    it('returns null for an unknown batch and rejects a duplicate id', async () => {
      expect(await t.store.getBatch('batch_unknown')).toBeNull();
      const b = batchFixture();
      await t.store.insertBatch(b);
      await expect(t.store.insertBatch(b)).rejects.toThrow();
    });

    it('lists newest first with exact hasMore and cursor paging', async () => {
      const batches = await seedBatches(5, (i) => ({ createdAt: T0 + 100 - i }));
      const newestFirst = ids(batches).reverse();

      const all = await t.store.listBatches({ limit: 5 });
      expect(ids(all.data)).toEqual(newestFirst);
      expect(all.hasMore).toBe(false);
      expect(all.data[0]).toEqual(batches.at(-1));

      const p1 = await t.store.listBatches({ limit: 2 });
      expect(ids(p1.data)).toEqual(newestFirst.slice(0, 2));
      expect(p1.hasMore).toBe(true);
      const p2 = await t.store.listBatches({ limit: 2, after: p1.data.at(-1)!.id });
      expect(ids(p2.data)).toEqual(newestFirst.slice(2, 4));
      expect(p2.hasMore).toBe(true);
      const p3 = await t.store.listBatches({ limit: 2, after: p2.data.at(-1)!.id });
      expect(ids(p3.data)).toEqual(newestFirst.slice(4));
      expect(p3.hasMore).toBe(false);

      expect(await t.store.listBatches({ limit: 2, after: batches[0]!.id })).toEqual({ data: [], hasMore: false });
    });

    it('returns an empty page for an unknown after id or an empty store', async () => {
      expect(await t.store.listBatches({ limit: 10 })).toEqual({ data: [], hasMore: false });
      await seedBatches(2);
      expect(await t.store.listBatches({ limit: 10, after: 'batch_unknown' })).toEqual({ data: [], hasMore: false });
    });

    it('tells whether a file is the input of an unfinished batch', async () => {
      const input = newFileId();
      const other = newFileId();
      for (const status of BATCH_STATUSES.filter(isTerminal)) await t.store.insertBatch(batchFixture({ inputFileId: input, status }));
      expect(await t.store.isInputOfUnfinishedBatch(input)).toBe(false);
      expect(await t.store.isInputOfUnfinishedBatch('file-unknown')).toBe(false);

      // Every unfinished status counts; each has an edge to failed, which ends it.
      for (const status of BATCH_STATUSES.filter((s) => !isTerminal(s))) {
        const b = batchFixture({ inputFileId: other, status });
        await t.store.insertBatch(b);
        expect(await t.store.isInputOfUnfinishedBatch(other), status).toBe(true);
        expect(await t.store.transition(b.id, [status], 'failed', T0 + 1)).not.toBeNull();
        expect(await t.store.isInputOfUnfinishedBatch(other), status).toBe(false);
      }
    });

    it('counts batches by status (statuses with none are absent)', async () => {
      expect(await t.store.countBatchesByStatus()).toEqual({});
      await seedBatches(2, () => ({ status: 'completed' }));
      await seedBatches(1, () => ({ status: 'validating' }));
      expect(await t.store.countBatchesByStatus()).toEqual({ completed: 2, validating: 1 });
    });
  });
}
