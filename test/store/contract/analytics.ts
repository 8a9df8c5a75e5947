import { describe, expect, it } from 'vitest';

import type { BatchRecord, BatchStatus } from '../../../src/domain/index.js';
import { emptyMinute } from '../../../src/store/meta-store.js';
import type { ContractContext } from './context.js';
import { batchFixture, ids, T0 } from './fixtures.js';

const M0 = T0 - (T0 % 60);

export function analyticsContract(t: ContractContext): void {
  describe('analytics minutes', () => {
    it('adds counters to the stored minute, creating it; lists one project or the sum of all, oldest first, in [from, to)', async () => {
      expect(await t.store.listAnalyticsMinutes(0, M0 * 2)).toEqual([]);
      await t.store.addAnalyticsMinutes([
        { ...emptyMinute(M0 + 60, 'a'), requestsCompleted: 2, latencyMsSum: 300, inputTokens: 10 },
        { ...emptyMinute(M0, 'a'), requestsCompleted: 1, uploads: 1, uploadBytes: 5000 },
        { ...emptyMinute(M0, 'b'), requestsFailed: 4, retries: 2, batchesCreated: 1 },
      ]);
      // A second write of the same minute adds (also twice in one call); fractions are rounded.
      await t.store.addAnalyticsMinutes([
        { ...emptyMinute(M0, 'a'), requestsCompleted: 3, outputTokens: 7, batchesFinished: 1, batchSecondsSum: 90.4 },
        { ...emptyMinute(M0, 'a'), requestsCompleted: 1, latencyMsSum: 2 ** 40 },
      ]);
      await t.store.addAnalyticsMinutes([]);

      expect(await t.store.listAnalyticsMinutes(0, M0 * 2, 'a')).toEqual([
        { ...emptyMinute(M0, 'a'), requestsCompleted: 5, uploads: 1, uploadBytes: 5000, outputTokens: 7, batchesFinished: 1, batchSecondsSum: 90, latencyMsSum: 2 ** 40 },
        { ...emptyMinute(M0 + 60, 'a'), requestsCompleted: 2, latencyMsSum: 300, inputTokens: 10 },
      ]);
      expect(await t.store.listAnalyticsMinutes(0, M0 * 2)).toEqual([
        {
          ...emptyMinute(M0),
          requestsCompleted: 5,
          requestsFailed: 4,
          retries: 2,
          batchesCreated: 1,
          uploads: 1,
          uploadBytes: 5000,
          outputTokens: 7,
          batchesFinished: 1,
          batchSecondsSum: 90,
          latencyMsSum: 2 ** 40,
        },
        { ...emptyMinute(M0 + 60), requestsCompleted: 2, latencyMsSum: 300, inputTokens: 10 },
      ]);
      // [from, to): the start is in, the end is out.
      expect((await t.store.listAnalyticsMinutes(M0 + 60, M0 + 120, 'a')).map((m) => m.minute)).toEqual([M0 + 60]);
      expect((await t.store.listAnalyticsMinutes(M0, M0 + 60)).map((m) => m.minute)).toEqual([M0]);
      expect(await t.store.listAnalyticsMinutes(0, M0 * 2, 'nobody')).toEqual([]);
    });

    it('prunes minutes before the cutoff and says how many', async () => {
      await t.store.addAnalyticsMinutes([
        { ...emptyMinute(M0 - 10 * 86_400, 'a'), requestsCompleted: 5 },
        { ...emptyMinute(M0 - 10 * 86_400, 'b'), requestsCompleted: 1 },
        { ...emptyMinute(M0 - 8 * 86_400, 'a'), requestsCompleted: 2 },
        { ...emptyMinute(M0, 'a'), requestsCompleted: 3 },
      ]);
      expect(await t.store.pruneAnalyticsMinutes(M0 - 8 * 86_400)).toBe(2);
      expect((await t.store.listAnalyticsMinutes(0, M0 * 2)).map((m) => m.minute)).toEqual([M0 - 8 * 86_400, M0]);
      expect(await t.store.pruneAnalyticsMinutes(M0 - 8 * 86_400)).toBe(0);
    });
  });

  describe('dashboard batch pages', () => {
    async function seed(): Promise<BatchRecord[]> {
      const spec: Array<[string, BatchStatus, number]> = [
        ['alpha', 'completed', T0 - 100],
        ['beta', 'in_progress', T0],
        ['alpha', 'in_progress', T0 + 10],
        ['alpha', 'failed', T0 + 20],
        ['beta', 'completed', T0 + 30],
        ['alpha', 'in_progress', T0 + 40],
      ];
      const out: BatchRecord[] = [];
      for (const [project, status, createdAt] of spec) {
        const b = batchFixture({ project, status, createdAt });
        await t.store.insertBatch(b);
        out.push(b);
      }
      return out;
    }

    it('listBatchesPage: newest first by offset, one status or all, one project or all, with the total', async () => {
      const b = await seed();
      const all = await t.store.listBatchesPage({ limit: 4, offset: 0 });
      expect(all.total).toBe(6);
      expect(all.data).toEqual([b[5], b[4], b[3], b[2]]);
      expect(ids((await t.store.listBatchesPage({ limit: 4, offset: 4 })).data)).toEqual(ids([b[1]!, b[0]!]));
      expect(await t.store.listBatchesPage({ limit: 4, offset: 6 })).toEqual({ data: [], total: 6 });

      const running = await t.store.listBatchesPage({ limit: 1, offset: 1, status: 'in_progress' });
      expect(running).toEqual({ data: [b[2]], total: 3 });
      const alpha = await t.store.listBatchesPage({ limit: 10, offset: 0, project: 'alpha' });
      expect(ids(alpha.data)).toEqual(ids([b[5]!, b[3]!, b[2]!, b[0]!]));
      expect(alpha.total).toBe(4);
      expect(await t.store.listBatchesPage({ limit: 10, offset: 0, project: 'beta', status: 'completed' })).toEqual({ data: [b[4]], total: 1 });
      expect(await t.store.listBatchesPage({ limit: 10, offset: 0, project: 'gamma' })).toEqual({ data: [], total: 0 });
      // A limit of 0 still counts.
      expect(await t.store.listBatchesPage({ limit: 0, offset: 0, status: 'completed' })).toEqual({ data: [], total: 2 });
    });

    it('countBatchesCreatedSince counts by status the batches created at or after `since`', async () => {
      await seed();
      expect(await t.store.countBatchesCreatedSince(T0)).toEqual({ in_progress: 3, failed: 1, completed: 1 });
      expect(await t.store.countBatchesCreatedSince(T0 + 10, 'alpha')).toEqual({ in_progress: 2, failed: 1 });
      expect(await t.store.countBatchesCreatedSince(T0 - 1000)).toEqual({ completed: 2, in_progress: 3, failed: 1 });
      expect(await t.store.countBatchesCreatedSince(T0 + 41)).toEqual({});
      expect(await t.store.countBatchesCreatedSince(T0, 'gamma')).toEqual({});
    });
  });
}
