import { describe, expect, it } from 'vitest';

import { type BatchRecord, type FileRecord, hashApiKey } from '../../../src/domain/index.js';
import type { ContractContext } from './context.js';
import { apiKeyFixture, batchFixture, fileFixture, ids, T0 } from './fixtures.js';

export function projectsAndKeysContract(t: ContractContext): void {
  async function seedBatches(n: number, overrides: (i: number) => Partial<BatchRecord> = () => ({})): Promise<BatchRecord[]> {
    const batches: BatchRecord[] = [];
    for (let i = 0; i < n; i++) {
      const b = batchFixture(overrides(i));
      await t.store.insertBatch(b);
      batches.push(b);
    }
    return batches;
  }

  describe('projects: scoped lists and sums', () => {
    /** Files of alpha and beta interleaved: a0 b0 a1 b1 a2 b2 (alpha's are batch, beta's alternate purposes). */
    async function seedTwoProjects(): Promise<{ alpha: FileRecord[]; beta: FileRecord[] }> {
      const alpha: FileRecord[] = [];
      const beta: FileRecord[] = [];
      for (let i = 0; i < 3; i++) {
        const a = fileFixture({ project: 'alpha', bytes: 100 + i });
        await t.store.insertFile(a);
        alpha.push(a);
        const b = fileFixture({ project: 'beta', bytes: 1000 * (i + 1), purpose: i % 2 === 0 ? 'batch' : 'batch_output' });
        await t.store.insertFile(b);
        beta.push(b);
      }
      return { alpha, beta };
    }

    for (const order of ['asc', 'desc'] as const) {
      it(`listFiles with a project shows only that project, in order, with an exact hasMore (${order})`, async () => {
        const { alpha, beta } = await seedTwoProjects();
        const sorted = (xs: FileRecord[]): string[] => (order === 'asc' ? ids(xs) : ids(xs).reverse());
        expect(ids((await t.store.listFiles({ limit: 10, order, project: 'alpha' })).data)).toEqual(sorted(alpha));
        expect((await t.store.listFiles({ limit: 10, order, project: 'beta' })).data).toEqual(order === 'asc' ? beta : [...beta].reverse());
        expect((await t.store.listFiles({ limit: 10, order, project: 'gamma' })).data).toEqual([]);
        expect((await t.store.listFiles({ limit: 10, order })).data).toHaveLength(6);
        // Another project's rows after the last alpha row do not make hasMore true.
        expect((await t.store.listFiles({ limit: 3, order, project: 'alpha' })).hasMore).toBe(false);
        const short = await t.store.listFiles({ limit: 2, order, project: 'alpha' });
        expect(ids(short.data)).toEqual(sorted(alpha).slice(0, 2));
        expect(short.hasMore).toBe(true);
        // The cursor pages within the project.
        const next = await t.store.listFiles({ limit: 2, order, project: 'alpha', after: short.data.at(-1)!.id });
        expect(ids(next.data)).toEqual(sorted(alpha).slice(2));
        expect(next.hasMore).toBe(false);
        // Purpose and project together.
        expect(ids((await t.store.listFiles({ limit: 10, order, project: 'beta', purpose: 'batch_output' })).data)).toEqual([beta[1]!.id]);
        expect((await t.store.listFiles({ limit: 10, order, project: 'alpha', purpose: 'batch_output' })).data).toEqual([]);
      });

      it(`listFiles with an after naming another project's file gives an empty page (${order})`, async () => {
        const { alpha, beta } = await seedTwoProjects();
        for (const b of beta) {
          expect(await t.store.listFiles({ limit: 10, order, project: 'alpha', after: b.id })).toEqual({ data: [], hasMore: false });
          expect(await t.store.listFiles({ limit: 10, order, project: 'alpha', after: b.id, purpose: 'batch' })).toEqual({ data: [], hasMore: false });
        }
        // Unscoped (admin) lists still take any cursor.
        expect((await t.store.listFiles({ limit: 10, order: 'asc', after: beta[0]!.id })).data.length).toBe(4);
        expect((await t.store.listFiles({ limit: 10, order: 'asc', project: 'alpha', after: alpha[0]!.id })).data).toEqual(alpha.slice(1));
      });
    }

    it('listBatches with a project shows only that project, newest first; another project’s cursor gives an empty page', async () => {
      const alpha: BatchRecord[] = [];
      const beta: BatchRecord[] = [];
      for (let i = 0; i < 3; i++) {
        alpha.push(...(await seedBatches(1, () => ({ project: 'alpha' }))));
        beta.push(...(await seedBatches(1, () => ({ project: 'beta' }))));
      }
      const a = await t.store.listBatches({ limit: 10, project: 'alpha' });
      expect(a.data).toEqual([...alpha].reverse());
      expect(a.hasMore).toBe(false);
      expect(ids((await t.store.listBatches({ limit: 10, project: 'beta' })).data)).toEqual(ids(beta).reverse());
      expect((await t.store.listBatches({ limit: 10 })).data).toHaveLength(6);
      expect((await t.store.listBatches({ limit: 3, project: 'alpha' })).hasMore).toBe(false);
      const first = await t.store.listBatches({ limit: 2, project: 'alpha' });
      expect(first.hasMore).toBe(true);
      expect(ids((await t.store.listBatches({ limit: 2, project: 'alpha', after: first.data.at(-1)!.id })).data)).toEqual([alpha[0]!.id]);
      for (const b of beta) expect(await t.store.listBatches({ limit: 10, project: 'alpha', after: b.id })).toEqual({ data: [], hasMore: false });
      expect(ids((await t.store.listBatches({ limit: 10, after: beta[2]!.id })).data)).toEqual([alpha[2]!.id, beta[1]!.id, alpha[1]!.id, beta[0]!.id, alpha[0]!.id]);
    });

    it('bytesByPurpose sums one project’s files, or all; storedBytesByProject each project’s', async () => {
      await seedTwoProjects();
      expect(await t.store.bytesByPurpose('alpha')).toEqual({ batch: 100 + 101 + 102 });
      expect(await t.store.bytesByPurpose('beta')).toEqual({ batch: 1000 + 3000, batch_output: 2000 });
      expect(await t.store.bytesByPurpose()).toEqual({ batch: 303 + 4000, batch_output: 2000 });
      expect(await t.store.bytesByPurpose('gamma')).toEqual({});
      expect(await t.store.storedBytesByProject()).toEqual({ alpha: 303, beta: 6000 });
    });

    it('countBatchesByStatus counts one project’s batches, or all', async () => {
      await seedBatches(2, () => ({ project: 'alpha', status: 'completed', completedAt: T0 + 1 }));
      await seedBatches(1, () => ({ project: 'alpha', status: 'in_progress' }));
      await seedBatches(3, () => ({ project: 'beta', status: 'in_progress' }));
      await seedBatches(1, () => ({ project: 'beta', status: 'failed' }));
      expect(await t.store.countBatchesByStatus('alpha')).toEqual({ completed: 2, in_progress: 1 });
      expect(await t.store.countBatchesByStatus('beta')).toEqual({ in_progress: 3, failed: 1 });
      expect(await t.store.countBatchesByStatus()).toEqual({ completed: 2, in_progress: 4, failed: 1 });
      expect(await t.store.countBatchesByStatus('gamma')).toEqual({});
    });
  });

  describe('projects: usage and quotas', () => {
    it('projectUsage: stored bytes of every purpose, unfinished batches, unanswered requests', async () => {
      expect(await t.store.projectUsage('alpha')).toEqual({ storedBytes: 0, activeBatches: 0, queuedRequests: 0 });
      const input7 = fileFixture({ project: 'alpha', bytes: 700, lines: 7 });
      const inputUnknown = fileFixture({ project: 'alpha', bytes: 50, lines: null });
      await t.store.insertFile(input7);
      await t.store.insertFile(inputUnknown);
      await t.store.insertFile(fileFixture({ project: 'alpha', purpose: 'batch_output', bytes: 300 }));
      await t.store.insertFile(fileFixture({ project: 'beta', bytes: 10_000, lines: 100 }));
      // Running: total - completed - failed are still to answer.
      await t.store.insertBatch(batchFixture({ project: 'alpha', status: 'in_progress', inputFileId: input7.id, requestCounts: { total: 10, completed: 3, failed: 2 } }));
      // Validating: its input file's lines.
      await t.store.insertBatch(batchFixture({ project: 'alpha', status: 'validating', inputFileId: input7.id }));
      // Finished batches hold nothing; a batch of another project does not count.
      for (const status of ['completed', 'failed', 'expired', 'cancelled'] as const) {
        await t.store.insertBatch(batchFixture({ project: 'alpha', status, inputFileId: input7.id, requestCounts: { total: 10, completed: 1, failed: 0 } }));
      }
      await t.store.insertBatch(batchFixture({ project: 'beta', status: 'validating', inputFileId: input7.id }));
      expect(await t.store.projectUsage('alpha')).toEqual({ storedBytes: 1050, activeBatches: 2, queuedRequests: 5 + 7 });
      // Other unfinished statuses count as active batches.
      await t.store.insertBatch(batchFixture({ project: 'alpha', status: 'cancelling', inputFileId: inputUnknown.id }));
      await t.store.insertBatch(batchFixture({ project: 'alpha', status: 'finalizing', inputFileId: inputUnknown.id }));
      expect((await t.store.projectUsage('alpha')).activeBatches).toBe(4);
      expect(await t.store.projectUsage('beta')).toEqual({ storedBytes: 10_000, activeBatches: 1, queuedRequests: 7 });
    });

    it('insertFile with a limit inserts up to the limit exactly and refuses past it, writing nothing', async () => {
      await t.store.insertFile(fileFixture({ project: 'alpha', bytes: 600 }));
      await t.store.insertFile(fileFixture({ project: 'alpha', purpose: 'batch_output', bytes: 300 }));
      await t.store.insertFile(fileFixture({ project: 'beta', bytes: 5000 }));
      const over = fileFixture({ project: 'alpha', bytes: 101 });
      expect(await t.store.insertFile(over, 1000)).toBe(false);
      expect(await t.store.getFile(over.id)).toBeNull();
      expect((await t.store.listFiles({ limit: 10, order: 'asc', project: 'alpha' })).data).toHaveLength(2);
      expect((await t.store.projectUsage('alpha')).storedBytes).toBe(900);

      const exact = fileFixture({ project: 'alpha', bytes: 100 });
      expect(await t.store.insertFile(exact, 1000)).toBe(true);
      expect(await t.store.getFile(exact.id)).toEqual(exact);
      // Full: one more byte does not fit.
      const one = fileFixture({ project: 'alpha', bytes: 1 });
      expect(await t.store.insertFile(one, 1000)).toBe(false);
      expect(await t.store.getFile(one.id)).toBeNull();
      // No limit; and another project's bytes never count.
      expect(await t.store.insertFile(fileFixture({ project: 'alpha', bytes: 1_000_000 }), null)).toBe(true);
      const gamma = fileFixture({ project: 'gamma', bytes: 1000 });
      expect(await t.store.insertFile(gamma, 1000)).toBe(true);
      expect(await t.store.getFile(gamma.id)).toEqual(gamma);
    });

    it('insertFile with a limit lets exactly one of two racing inserts take the last bytes', async () => {
      const a = fileFixture({ project: 'alpha', bytes: 600 });
      const b = fileFixture({ project: 'alpha', bytes: 600 });
      const results = await Promise.all([t.store.insertFile(a, 1000), t.store.insertFile(b, 1000)]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect((await t.store.projectUsage('alpha')).storedBytes).toBe(600);
    });

    it('insertBatch with a quota refuses past maxActiveBatches, naming the limit and writing nothing', async () => {
      await seedBatches(2, () => ({ project: 'alpha', status: 'in_progress' }));
      await seedBatches(3, () => ({ project: 'alpha', status: 'completed', completedAt: T0 + 1 }));
      await seedBatches(5, () => ({ project: 'beta', status: 'in_progress' }));
      const refused = batchFixture({ project: 'alpha' });
      expect(await t.store.insertBatch(refused, { requests: 1, maxActiveBatches: 2, maxQueuedRequests: null })).toBe('maxActiveBatches');
      expect(await t.store.getBatch(refused.id)).toBeNull();
      expect(await t.store.countBatchesByStatus('alpha')).toEqual({ in_progress: 2, completed: 3 });
      const fits = batchFixture({ project: 'alpha' });
      expect(await t.store.insertBatch(fits, { requests: 1, maxActiveBatches: 3, maxQueuedRequests: null })).toBeNull();
      expect(await t.store.getBatch(fits.id)).toEqual(fits);
      expect(await t.store.insertBatch(batchFixture({ project: 'alpha' }), { requests: 1, maxActiveBatches: null, maxQueuedRequests: null })).toBeNull();
      // Beta's five do not count against gamma.
      expect(await t.store.insertBatch(batchFixture({ project: 'gamma' }), { requests: 1, maxActiveBatches: 1, maxQueuedRequests: null })).toBeNull();
    });

    it('insertBatch with a quota refuses past maxQueuedRequests, naming the limit and writing nothing', async () => {
      const input = fileFixture({ project: 'alpha', lines: 4 });
      await t.store.insertFile(input);
      await t.store.insertBatch(batchFixture({ project: 'alpha', status: 'in_progress', inputFileId: input.id, requestCounts: { total: 6, completed: 1, failed: 1 } }));
      await t.store.insertBatch(batchFixture({ project: 'alpha', status: 'validating', inputFileId: input.id }));
      await t.store.insertBatch(batchFixture({ project: 'beta', status: 'validating', inputFileId: input.id }));
      // alpha holds 4 + 4 = 8 queued requests.
      const refused = batchFixture({ project: 'alpha' });
      expect(await t.store.insertBatch(refused, { requests: 3, maxActiveBatches: null, maxQueuedRequests: 10 })).toBe('maxQueuedRequests');
      expect(await t.store.getBatch(refused.id)).toBeNull();
      expect((await t.store.listBatches({ limit: 10, project: 'alpha' })).data).toHaveLength(2);
      const exact = batchFixture({ project: 'alpha' });
      expect(await t.store.insertBatch(exact, { requests: 2, maxActiveBatches: null, maxQueuedRequests: 10 })).toBeNull();
      expect(await t.store.getBatch(exact.id)).toEqual(exact);
      expect(await t.store.insertBatch(batchFixture({ project: 'alpha' }), { requests: 0, maxActiveBatches: null, maxQueuedRequests: null })).toBeNull();
    });

    it('insertBatch checks maxActiveBatches before maxQueuedRequests', async () => {
      await seedBatches(1, () => ({ project: 'alpha', status: 'in_progress', requestCounts: { total: 10, completed: 0, failed: 0 } }));
      expect(await t.store.insertBatch(batchFixture({ project: 'alpha' }), { requests: 5, maxActiveBatches: 1, maxQueuedRequests: 12 })).toBe('maxActiveBatches');
    });
  });

  describe('projects: names and limits', () => {
    it('listProjects names every project holding a file, a batch, a key or limits, once, sorted by code point', async () => {
      expect(await t.store.listProjects()).toEqual([]);
      await t.store.insertFile(fileFixture({ project: 'zeta' }));
      await t.store.insertFile(fileFixture({ project: 'zeta' }));
      await t.store.insertBatch(batchFixture({ project: 'beta' }));
      await t.store.insertApiKey(apiKeyFixture({ project: 'kappa' }));
      await t.store.setProjectLimits('alpha', { maxActiveBatches: 2 });
      await t.store.insertBatch(batchFixture({ project: 'zeta' }));
      await t.store.insertFile(fileFixture({ project: 'Omega' }));
      await t.store.insertFile(fileFixture({ project: 'b-2' }));
      await t.store.insertFile(fileFixture({ project: 'b.1' }));
      expect(await t.store.listProjects()).toEqual(['Omega', 'alpha', 'b-2', 'b.1', 'beta', 'kappa', 'zeta']);
    });

    it('getProjectLimits / setProjectLimits: unset is null, undefined keeps, null clears, 0 is kept as 0', async () => {
      const none = { maxStoredBytes: null, maxActiveBatches: null, maxQueuedRequests: null };
      expect(await t.store.getProjectLimits('alpha')).toEqual(none);
      await t.store.setProjectLimits('alpha', { maxStoredBytes: 5000 });
      expect(await t.store.getProjectLimits('alpha')).toEqual({ ...none, maxStoredBytes: 5000 });
      await t.store.setProjectLimits('alpha', { maxActiveBatches: 3, maxQueuedRequests: 0 });
      expect(await t.store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: 3, maxQueuedRequests: 0 });
      await t.store.setProjectLimits('alpha', { maxStoredBytes: undefined, maxActiveBatches: null });
      expect(await t.store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: null, maxQueuedRequests: 0 });
      await t.store.setProjectLimits('alpha', {});
      expect(await t.store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: null, maxQueuedRequests: 0 });
      // Per project; large limits stay exact.
      expect(await t.store.getProjectLimits('beta')).toEqual(none);
      await t.store.setProjectLimits('beta', { maxQueuedRequests: 7, maxStoredBytes: 2 ** 45 });
      expect(await t.store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: null, maxQueuedRequests: 0 });
      expect(await t.store.getProjectLimits('beta')).toEqual({ ...none, maxQueuedRequests: 7, maxStoredBytes: 2 ** 45 });
    });
  });

  describe('api keys', () => {
    it('insert, find by hash (revoked or not), list oldest first, count', async () => {
      expect(await t.store.countApiKeys()).toBe(0);
      expect(await t.store.listApiKeys()).toEqual([]);
      const a = apiKeyFixture({ project: 'alpha', name: 'ünïcode "label"', createdAt: T0 + 5 });
      const b = apiKeyFixture({ project: 'ops', admin: true, createdAt: T0 });
      await t.store.insertApiKey(a);
      await t.store.insertApiKey(b);
      expect(await t.store.findApiKeyByHash(a.hash)).toEqual(a);
      expect(await t.store.findApiKeyByHash(b.hash)).toEqual(b);
      expect(await t.store.findApiKeyByHash(hashApiKey('not a key'))).toBeNull();
      expect(await t.store.listApiKeys()).toEqual([a, b]);
      expect(await t.store.countApiKeys()).toBe(2);
      await expect(t.store.insertApiKey({ ...apiKeyFixture(), hash: a.hash })).rejects.toThrow();
    });

    it('revoke: once true, twice false, unknown false; a revoked key is still found and counted', async () => {
      const a = apiKeyFixture();
      const b = apiKeyFixture();
      await t.store.insertApiKey(a);
      await t.store.insertApiKey(b);
      expect(await t.store.revokeApiKey(a.id, T0 + 10)).toBe(true);
      expect(await t.store.revokeApiKey(a.id, T0 + 20)).toBe(false);
      expect(await t.store.revokeApiKey('key_unknown', T0 + 20)).toBe(false);
      expect(await t.store.findApiKeyByHash(a.hash)).toEqual({ ...a, revokedAt: T0 + 10 });
      expect(await t.store.findApiKeyByHash(b.hash)).toEqual(b);
      expect(await t.store.countApiKeys()).toBe(2);
      expect(await t.store.revokeApiKey(b.id, T0 + 30)).toBe(true);
      expect(await t.store.countApiKeys()).toBe(2);
      expect((await t.store.listApiKeys()).map((k) => k.revokedAt)).toEqual([T0 + 10, T0 + 30]);
    });

    it('touch sets last use of that key only', async () => {
      const a = apiKeyFixture();
      const b = apiKeyFixture();
      await t.store.insertApiKey(a);
      await t.store.insertApiKey(b);
      await t.store.touchApiKey(a.id, T0 + 99);
      expect(await t.store.findApiKeyByHash(a.hash)).toEqual({ ...a, lastUsedAt: T0 + 99 });
      expect(await t.store.findApiKeyByHash(b.hash)).toEqual(b);
      await t.store.touchApiKey(a.id, T0 + 120);
      expect((await t.store.findApiKeyByHash(a.hash))?.lastUsedAt).toBe(T0 + 120);
      await expect(t.store.touchApiKey('key_unknown', T0)).resolves.toBeUndefined();
    });
  });
}
