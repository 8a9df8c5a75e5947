import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  type ApiKeyRecord,
  BATCH_STATUSES,
  type BatchRecord,
  type BatchStatus,
  emptyUsage,
  type FilePurpose,
  type FileRecord,
  hashApiKey,
  isTerminal,
  newApiKeyId,
  newApiKeySecret,
  newBatchId,
  newFileId,
} from '../../src/domain/index.js';
import type { MetaStore } from '../../src/store/meta-store.js';

const T0 = 1_700_000_000;

export function fileFixture(overrides: Partial<FileRecord> = {}): FileRecord {
  const id = overrides.id ?? newFileId();
  return {
    id,
    filename: 'input.jsonl',
    purpose: 'batch',
    bytes: 1234,
    createdAt: T0,
    expiresAt: null,
    blobKey: `files/${id}.jsonl`,
    batchId: null,
    project: 'default',
    lines: null,
    ...overrides,
  };
}

export function batchFixture(overrides: Partial<BatchRecord> = {}): BatchRecord {
  return {
    id: newBatchId(),
    project: 'default',
    inputFileId: newFileId(),
    endpoint: '/v1/chat/completions',
    completionWindow: '24h',
    status: 'validating',
    model: null,
    metadata: null,
    errors: null,
    outputFileId: null,
    errorFileId: null,
    createdAt: T0,
    inProgressAt: null,
    expiresAt: T0 + 86_400,
    finalizingAt: null,
    completedAt: null,
    failedAt: null,
    expiredAt: null,
    cancellingAt: null,
    cancelledAt: null,
    requestCounts: { total: 0, completed: 0, failed: 0 },
    usage: emptyUsage(),
    outputExpiresAfter: null,
    ...overrides,
  };
}

export function apiKeyFixture(overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  const secret = newApiKeySecret();
  return {
    id: newApiKeyId(),
    project: 'default',
    admin: false,
    name: null,
    hash: hashApiKey(secret),
    prefix: `${secret.slice(0, 12)}…`,
    createdAt: T0,
    revokedAt: null,
    lastUsedAt: null,
    ...overrides,
  };
}

/** Which BatchRecord field `transition` stamps for each target status. */
const STAMP: Record<BatchStatus, keyof BatchRecord | null> = {
  validating: null,
  in_progress: 'inProgressAt',
  finalizing: 'finalizingAt',
  completed: 'completedAt',
  failed: 'failedAt',
  expired: 'expiredAt',
  cancelling: 'cancellingAt',
  cancelled: 'cancelledAt',
};
const STAMP_FIELDS = Object.values(STAMP).filter((f): f is keyof BatchRecord => f !== null);

/**
 * The behaviour every MetaStore must have. `makeStore` returns a fresh, empty store for each
 * test; the contract closes it afterwards.
 */
export function metaStoreContract(name: string, makeStore: () => Promise<MetaStore>): void {
  describe(`MetaStore contract: ${name}`, () => {
    let store: MetaStore;

    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      await store.close();
    });

    /** Inserts `n` files in order and returns them. */
    async function seedFiles(n: number, overrides: (i: number) => Partial<FileRecord> = () => ({})): Promise<FileRecord[]> {
      const files: FileRecord[] = [];
      for (let i = 0; i < n; i++) {
        const f = fileFixture({ filename: `f${i}.jsonl`, ...overrides(i) });
        await store.insertFile(f);
        files.push(f);
      }
      return files;
    }

    async function seedBatches(n: number, overrides: (i: number) => Partial<BatchRecord> = () => ({})): Promise<BatchRecord[]> {
      const batches: BatchRecord[] = [];
      for (let i = 0; i < n; i++) {
        const b = batchFixture(overrides(i));
        await store.insertBatch(b);
        batches.push(b);
      }
      return batches;
    }

    const ids = (xs: { id: string }[]): string[] => xs.map((x) => x.id);

    describe('files', () => {
      it('round-trips a file, with and without optional fields', async () => {
        const plain = fileFixture();
        const full = fileFixture({ purpose: 'batch_output', expiresAt: T0 + 3600, batchId: newBatchId(), bytes: 0, filename: 'ünïcode "name".jsonl' });
        await store.insertFile(plain);
        await store.insertFile(full);
        expect(await store.getFile(plain.id)).toEqual(plain);
        expect(await store.getFile(full.id)).toEqual(full);
      });

      it('returns null for an unknown file', async () => {
        expect(await store.getFile('file-doesnotexist')).toBeNull();
      });

      it('rejects a duplicate id', async () => {
        const f = fileFixture();
        await store.insertFile(f);
        await expect(store.insertFile({ ...f, filename: 'other' })).rejects.toThrow();
        expect(await store.getFile(f.id)).toEqual(f);
      });

      it('lists in insertion order, asc and desc, regardless of createdAt', async () => {
        const files = await seedFiles(4, (i) => ({ createdAt: T0 - i }));
        const asc = await store.listFiles({ limit: 10, order: 'asc' });
        expect(ids(asc.data)).toEqual(ids(files));
        expect(asc.data).toEqual(files);
        expect(asc.hasMore).toBe(false);
        const desc = await store.listFiles({ limit: 10, order: 'desc' });
        expect(ids(desc.data)).toEqual(ids(files).reverse());
        expect(desc.hasMore).toBe(false);
      });

      it('returns an empty page from an empty store', async () => {
        expect(await store.listFiles({ limit: 10, order: 'desc' })).toEqual({ data: [], hasMore: false });
        expect(await store.listFiles({ limit: 10, order: 'asc', purpose: 'batch' })).toEqual({ data: [], hasMore: false });
      });

      it('computes hasMore exactly', async () => {
        await seedFiles(3);
        expect((await store.listFiles({ limit: 2, order: 'asc' })).hasMore).toBe(true);
        expect((await store.listFiles({ limit: 3, order: 'asc' })).hasMore).toBe(false);
        expect((await store.listFiles({ limit: 4, order: 'asc' })).hasMore).toBe(false);
        const exact = await store.listFiles({ limit: 3, order: 'desc' });
        expect(exact.data).toHaveLength(3);
        expect(exact.hasMore).toBe(false);
      });

      for (const order of ['asc', 'desc'] as const) {
        it(`pages through every file with the after cursor (${order})`, async () => {
          const files = await seedFiles(7);
          const expected = order === 'asc' ? ids(files) : ids(files).reverse();
          const seen: string[] = [];
          let after: string | undefined;
          const pages: boolean[] = [];
          for (;;) {
            const page = await store.listFiles({ limit: 3, order, after });
            seen.push(...ids(page.data));
            pages.push(page.hasMore);
            if (!page.hasMore) break;
            after = page.data.at(-1)?.id;
          }
          expect(seen).toEqual(expected);
          expect(pages).toEqual([true, true, false]);
        });

        it(`starts strictly after the cursor item (${order})`, async () => {
          const files = await seedFiles(5);
          const cursor = files[2]!;
          const page = await store.listFiles({ limit: 10, order, after: cursor.id });
          expect(ids(page.data)).toEqual(order === 'asc' ? ids(files.slice(3)) : ids(files.slice(0, 2)).reverse());
          expect(page.hasMore).toBe(false);
        });

        it(`returns an empty page after the last item (${order})`, async () => {
          const files = await seedFiles(3);
          const last = order === 'asc' ? files.at(-1)! : files[0]!;
          expect(await store.listFiles({ limit: 10, order, after: last.id })).toEqual({ data: [], hasMore: false });
        });

        it(`returns an empty page for an unknown after id (${order})`, async () => {
          await seedFiles(3);
          expect(await store.listFiles({ limit: 10, order, after: 'file-unknown' })).toEqual({ data: [], hasMore: false });
          expect(await store.listFiles({ limit: 10, order, after: 'file-unknown', purpose: 'batch' })).toEqual({ data: [], hasMore: false });
        });
      }

      it('filters by purpose, with paging and cursor', async () => {
        const purposes: FilePurpose[] = ['batch', 'batch_output', 'batch', 'user_data', 'batch', 'batch_output', 'batch'];
        const files = await seedFiles(purposes.length, (i) => ({ purpose: purposes[i]! }));
        const batchFiles = files.filter((f) => f.purpose === 'batch');

        const all = await store.listFiles({ limit: 10, order: 'asc', purpose: 'batch' });
        expect(ids(all.data)).toEqual(ids(batchFiles));

        const first = await store.listFiles({ limit: 2, order: 'desc', purpose: 'batch' });
        expect(ids(first.data)).toEqual(ids(batchFiles).reverse().slice(0, 2));
        expect(first.hasMore).toBe(true);
        const second = await store.listFiles({ limit: 2, order: 'desc', purpose: 'batch', after: first.data.at(-1)!.id });
        expect(ids(second.data)).toEqual(ids(batchFiles).reverse().slice(2, 4));
        expect(second.hasMore).toBe(false);

        expect(ids((await store.listFiles({ limit: 10, order: 'asc', purpose: 'user_data' })).data)).toEqual([files[3]!.id]);
        expect((await store.listFiles({ limit: 10, order: 'asc', purpose: 'vision' })).data).toEqual([]);
      });

      it('positions a purpose-filtered list after a cursor item of another purpose', async () => {
        const purposes: FilePurpose[] = ['batch', 'batch_output', 'batch', 'batch'];
        const files = await seedFiles(purposes.length, (i) => ({ purpose: purposes[i]! }));
        const page = await store.listFiles({ limit: 10, order: 'asc', purpose: 'batch', after: files[1]!.id });
        expect(ids(page.data)).toEqual([files[2]!.id, files[3]!.id]);
      });

      it('deletes a file and reports whether a row existed', async () => {
        const [a, b] = await seedFiles(2);
        expect(await store.deleteFile(a!.id)).toBe(true);
        expect(await store.getFile(a!.id)).toBeNull();
        expect(await store.deleteFile(a!.id)).toBe(false);
        expect(await store.deleteFile('file-unknown')).toBe(false);
        expect(ids((await store.listFiles({ limit: 10, order: 'asc' })).data)).toEqual([b!.id]);
        // A deleted cursor is an unknown cursor.
        expect(await store.listFiles({ limit: 10, order: 'asc', after: a!.id })).toEqual({ data: [], hasMore: false });
      });
    });

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
          usage: { inputTokens: 100, cachedTokens: 20, outputTokens: 50, reasoningTokens: 5, totalTokens: 150 },
          outputExpiresAfter: 3600,
        });
        const plain = batchFixture();
        await store.insertBatch(full);
        await store.insertBatch(plain);
        expect(await store.getBatch(full.id)).toEqual(full);
        expect(await store.getBatch(plain.id)).toEqual(plain);
      });

      it('keeps empty metadata and empty errors distinct from null', async () => {
        const b = batchFixture({ metadata: {}, errors: [] });
        await store.insertBatch(b);
        expect(await store.getBatch(b.id)).toEqual(b);
      });

      it('returns null for an unknown batch and rejects a duplicate id', async () => {
        expect(await store.getBatch('batch_unknown')).toBeNull();
        const b = batchFixture();
        await store.insertBatch(b);
        await expect(store.insertBatch(b)).rejects.toThrow();
      });

      it('lists newest first with exact hasMore and cursor paging', async () => {
        const batches = await seedBatches(5, (i) => ({ createdAt: T0 + 100 - i }));
        const newestFirst = ids(batches).reverse();

        const all = await store.listBatches({ limit: 5 });
        expect(ids(all.data)).toEqual(newestFirst);
        expect(all.hasMore).toBe(false);
        expect(all.data[0]).toEqual(batches.at(-1));

        const p1 = await store.listBatches({ limit: 2 });
        expect(ids(p1.data)).toEqual(newestFirst.slice(0, 2));
        expect(p1.hasMore).toBe(true);
        const p2 = await store.listBatches({ limit: 2, after: p1.data.at(-1)!.id });
        expect(ids(p2.data)).toEqual(newestFirst.slice(2, 4));
        expect(p2.hasMore).toBe(true);
        const p3 = await store.listBatches({ limit: 2, after: p2.data.at(-1)!.id });
        expect(ids(p3.data)).toEqual(newestFirst.slice(4));
        expect(p3.hasMore).toBe(false);

        expect(await store.listBatches({ limit: 2, after: batches[0]!.id })).toEqual({ data: [], hasMore: false });
      });

      it('returns an empty page for an unknown after id or an empty store', async () => {
        expect(await store.listBatches({ limit: 10 })).toEqual({ data: [], hasMore: false });
        await seedBatches(2);
        expect(await store.listBatches({ limit: 10, after: 'batch_unknown' })).toEqual({ data: [], hasMore: false });
      });

      it('lists unfinished batches oldest first', async () => {
        // Every status twice, interleaved, so order is by insertion and not by status.
        const statuses = [...BATCH_STATUSES, ...[...BATCH_STATUSES].reverse()];
        const batches = await seedBatches(statuses.length, (i) => ({ status: statuses[i]! }));
        const unfinished = await store.listUnfinishedBatches();
        expect(ids(unfinished)).toEqual(ids(batches.filter((b) => !isTerminal(b.status))));
        expect(unfinished.map((b) => b.status)).toEqual(statuses.filter((s) => !isTerminal(s)));
        expect(unfinished[0]).toEqual(batches[0]);
      });

      it('returns no unfinished batches when all are terminal', async () => {
        await seedBatches(4, (i) => ({ status: (['failed', 'completed', 'expired', 'cancelled'] as const)[i]! }));
        expect(await store.listUnfinishedBatches()).toEqual([]);
      });

      it('tells whether a file is the input of an unfinished batch', async () => {
        const input = newFileId();
        const other = newFileId();
        for (const status of BATCH_STATUSES.filter(isTerminal)) await store.insertBatch(batchFixture({ inputFileId: input, status }));
        expect(await store.isInputOfUnfinishedBatch(input)).toBe(false);
        expect(await store.isInputOfUnfinishedBatch('file-unknown')).toBe(false);

        for (const status of BATCH_STATUSES.filter((s) => !isTerminal(s))) {
          const b = batchFixture({ inputFileId: other, status });
          await store.insertBatch(b);
          expect(await store.isInputOfUnfinishedBatch(other)).toBe(true);
          expect(await store.deleteBatch(b.id)).toBe(true);
          expect(await store.isInputOfUnfinishedBatch(other)).toBe(false);
        }

        const running = batchFixture({ inputFileId: input, status: 'in_progress' });
        await store.insertBatch(running);
        expect(await store.isInputOfUnfinishedBatch(input)).toBe(true);
        await store.transition(running.id, ['in_progress'], 'expired', T0 + 10);
        expect(await store.isInputOfUnfinishedBatch(input)).toBe(false);
      });

      it('deletes a batch and reports whether a row existed', async () => {
        const [a, b] = await seedBatches(2);
        expect(await store.deleteBatch(a!.id)).toBe(true);
        expect(await store.getBatch(a!.id)).toBeNull();
        expect(await store.deleteBatch(a!.id)).toBe(false);
        expect(await store.deleteBatch('batch_unknown')).toBe(false);
        expect(ids((await store.listBatches({ limit: 10 })).data)).toEqual([b!.id]);
      });
    });

    describe('transition', () => {
      it('moves the batch, stamps the timestamp, sets the fields and returns the stored record', async () => {
        const b = batchFixture({ status: 'validating' });
        await store.insertBatch(b);
        const moved = await store.transition(b.id, ['validating'], 'in_progress', T0 + 5, {
          model: 'm1',
          requestCounts: { total: 3, completed: 0, failed: 0 },
        });
        const expected: BatchRecord = { ...b, status: 'in_progress', inProgressAt: T0 + 5, model: 'm1', requestCounts: { total: 3, completed: 0, failed: 0 } };
        expect(moved).toEqual(expected);
        expect(await store.getBatch(b.id)).toEqual(expected);
      });

      for (const to of BATCH_STATUSES) {
        it(`stamps only ${STAMP[to] ?? 'no timestamp'} when moving to ${to}`, async () => {
          const b = batchFixture({ status: 'cancelling' });
          await store.insertBatch(b);
          const moved = await store.transition(b.id, ['cancelling'], to, T0 + 42);
          expect(moved?.status).toBe(to);
          for (const field of STAMP_FIELDS) expect(moved?.[field], field).toBe(field === STAMP[to] ? T0 + 42 : null);
          expect({ ...moved, status: b.status }).toEqual({ ...b, ...(STAMP[to] ? { [STAMP[to]]: T0 + 42 } : {}) });
        });
      }

      it('accepts any of several from statuses', async () => {
        const b = batchFixture({ status: 'finalizing' });
        await store.insertBatch(b);
        const moved = await store.transition(b.id, ['validating', 'in_progress', 'finalizing'], 'cancelling', T0 + 1);
        expect(moved?.status).toBe('cancelling');
        expect(moved?.cancellingAt).toBe(T0 + 1);
      });

      it('returns null and changes nothing when the status is not in from', async () => {
        const b = batchFixture({ status: 'completed', completedAt: T0 + 9 });
        await store.insertBatch(b);
        const output = fileFixture({ purpose: 'batch_output', batchId: b.id });
        const result = await store.transition(b.id, ['validating', 'in_progress'], 'cancelling', T0 + 20, {
          errors: [{ code: 'x', message: 'y', param: null, line: null }],
          model: 'm',
          insertFiles: [output],
        });
        expect(result).toBeNull();
        expect(await store.getBatch(b.id)).toEqual(b);
        expect(await store.getFile(output.id)).toBeNull();
      });

      it('returns null for an unknown batch or an empty from', async () => {
        expect(await store.transition('batch_unknown', ['validating'], 'failed', T0)).toBeNull();
        const b = batchFixture();
        await store.insertBatch(b);
        expect(await store.transition(b.id, [], 'failed', T0)).toBeNull();
        expect(await store.getBatch(b.id)).toEqual(b);
      });

      it('lets exactly one of two racing transitions win', async () => {
        const b = batchFixture({ status: 'in_progress', inProgressAt: T0 });
        await store.insertBatch(b);
        const [x, y] = await Promise.all([
          store.transition(b.id, ['in_progress'], 'finalizing', T0 + 1),
          store.transition(b.id, ['in_progress', 'validating'], 'cancelling', T0 + 2),
        ]);
        expect([x, y].filter((r) => r !== null)).toHaveLength(1);
        expect((await store.getBatch(b.id))?.status).toBe((x ?? y)?.status);
        // And the loser can retry from the new status.
        expect(await store.transition(b.id, ['in_progress'], 'finalizing', T0 + 3)).toBeNull();
      });

      it('leaves fields that are not given untouched and clears fields given as null', async () => {
        const b = batchFixture({
          status: 'in_progress',
          model: 'm0',
          errors: [{ code: 'e', message: 'm', param: null, line: 1 }],
          outputFileId: 'file-out',
          errorFileId: 'file-err',
          requestCounts: { total: 5, completed: 2, failed: 1 },
          usage: { inputTokens: 1, cachedTokens: 2, outputTokens: 3, reasoningTokens: 4, totalTokens: 5 },
        });
        await store.insertBatch(b);
        const untouched = await store.transition(b.id, ['in_progress'], 'in_progress', T0 + 1, {});
        expect(untouched).toEqual({ ...b, inProgressAt: T0 + 1 });

        const cleared = await store.transition(b.id, ['in_progress'], 'finalizing', T0 + 2, {
          model: null,
          errors: null,
          outputFileId: null,
          errorFileId: null,
        });
        expect(cleared).toEqual({
          ...b,
          status: 'finalizing',
          inProgressAt: T0 + 1,
          finalizingAt: T0 + 2,
          model: null,
          errors: null,
          outputFileId: null,
          errorFileId: null,
        });
      });

      it('sets errors, output/error files, counts and usage', async () => {
        const b = batchFixture({ status: 'finalizing' });
        await store.insertBatch(b);
        const fields = {
          errors: [{ code: 'batch_expired', message: 'late', param: null, line: 7 }],
          outputFileId: newFileId(),
          errorFileId: newFileId(),
          requestCounts: { total: 9, completed: 8, failed: 1 },
          usage: { inputTokens: 10, cachedTokens: 1, outputTokens: 20, reasoningTokens: 2, totalTokens: 30 },
        };
        const moved = await store.transition(b.id, ['finalizing'], 'completed', T0 + 3, fields);
        expect(moved).toEqual({ ...b, ...fields, status: 'completed', completedAt: T0 + 3 });
        expect(await store.getBatch(b.id)).toEqual(moved);
      });

      it('inserts insertFiles in the same write', async () => {
        const b = batchFixture({ status: 'finalizing' });
        await store.insertBatch(b);
        const output = fileFixture({ purpose: 'batch_output', batchId: b.id, filename: 'batch_output.jsonl', expiresAt: T0 + 100 });
        const errorFile = fileFixture({ purpose: 'batch_output', batchId: b.id, filename: 'batch_errors.jsonl' });
        const moved = await store.transition(b.id, ['finalizing'], 'completed', T0 + 4, {
          outputFileId: output.id,
          errorFileId: errorFile.id,
          insertFiles: [output, errorFile],
        });
        expect(moved?.outputFileId).toBe(output.id);
        expect(await store.getFile(output.id)).toEqual(output);
        expect(await store.getFile(errorFile.id)).toEqual(errorFile);
        const listed = await store.listFiles({ limit: 10, order: 'asc', purpose: 'batch_output' });
        expect(ids(listed.data)).toEqual([output.id, errorFile.id]);
      });

      it('applies nothing when inserting a file fails', async () => {
        const b = batchFixture({ status: 'finalizing' });
        await store.insertBatch(b);
        const existing = fileFixture();
        await store.insertFile(existing);
        const fresh = fileFixture({ purpose: 'batch_output', batchId: b.id });
        await expect(
          store.transition(b.id, ['finalizing'], 'completed', T0 + 4, { outputFileId: fresh.id, insertFiles: [fresh, { ...existing }] }),
        ).rejects.toThrow();
        expect(await store.getBatch(b.id)).toEqual(b);
        expect(await store.getFile(fresh.id)).toBeNull();
        expect(await store.getFile(existing.id)).toEqual(existing);
      });
    });

    describe('saveProgress', () => {
      it('updates the counters and nothing else', async () => {
        const b = batchFixture({ status: 'in_progress', inProgressAt: T0, model: 'm', metadata: { k: 'v' } });
        await store.insertBatch(b);
        const counts = { total: 10, completed: 4, failed: 1 };
        const usage = { inputTokens: 400, cachedTokens: 100, outputTokens: 200, reasoningTokens: 50, totalTokens: 600 };
        await store.saveProgress(b.id, counts, usage);
        expect(await store.getBatch(b.id)).toEqual({ ...b, requestCounts: counts, usage });

        const later = { total: 10, completed: 9, failed: 1 };
        await store.saveProgress(b.id, later, usage);
        expect((await store.getBatch(b.id))?.requestCounts).toEqual(later);
      });

      it('is a no-op for an unknown batch', async () => {
        await expect(store.saveProgress('batch_unknown', { total: 1, completed: 1, failed: 0 }, emptyUsage())).resolves.toBeUndefined();
      });
    });

    describe('projects: scoped lists and sums', () => {
      /** Files of alpha and beta interleaved: a0 b0 a1 b1 a2 b2 (alpha's are batch, beta's alternate purposes). */
      async function seedTwoProjects(): Promise<{ alpha: FileRecord[]; beta: FileRecord[] }> {
        const alpha: FileRecord[] = [];
        const beta: FileRecord[] = [];
        for (let i = 0; i < 3; i++) {
          const a = fileFixture({ project: 'alpha', bytes: 100 + i });
          await store.insertFile(a);
          alpha.push(a);
          const b = fileFixture({ project: 'beta', bytes: 1000 * (i + 1), purpose: i % 2 === 0 ? 'batch' : 'batch_output' });
          await store.insertFile(b);
          beta.push(b);
        }
        return { alpha, beta };
      }

      for (const order of ['asc', 'desc'] as const) {
        it(`listFiles with a project shows only that project, in order, with an exact hasMore (${order})`, async () => {
          const { alpha, beta } = await seedTwoProjects();
          const sorted = (xs: FileRecord[]): string[] => (order === 'asc' ? ids(xs) : ids(xs).reverse());
          expect(ids((await store.listFiles({ limit: 10, order, project: 'alpha' })).data)).toEqual(sorted(alpha));
          expect((await store.listFiles({ limit: 10, order, project: 'beta' })).data).toEqual(order === 'asc' ? beta : [...beta].reverse());
          expect((await store.listFiles({ limit: 10, order, project: 'gamma' })).data).toEqual([]);
          expect(ids((await store.listFiles({ limit: 10, order })).data)).toHaveLength(6);
          // Another project's rows after the last alpha row do not make hasMore true.
          const exact = await store.listFiles({ limit: 3, order, project: 'alpha' });
          expect(exact.hasMore).toBe(false);
          const short = await store.listFiles({ limit: 2, order, project: 'alpha' });
          expect(ids(short.data)).toEqual(sorted(alpha).slice(0, 2));
          expect(short.hasMore).toBe(true);
          // The cursor pages within the project.
          const next = await store.listFiles({ limit: 2, order, project: 'alpha', after: short.data.at(-1)!.id });
          expect(ids(next.data)).toEqual(sorted(alpha).slice(2));
          expect(next.hasMore).toBe(false);
          // Purpose and project together.
          expect(ids((await store.listFiles({ limit: 10, order, project: 'beta', purpose: 'batch_output' })).data)).toEqual([beta[1]!.id]);
          expect((await store.listFiles({ limit: 10, order, project: 'alpha', purpose: 'batch_output' })).data).toEqual([]);
        });

        it(`listFiles with an after naming another project's file gives an empty page (${order})`, async () => {
          const { alpha, beta } = await seedTwoProjects();
          for (const b of beta) {
            expect(await store.listFiles({ limit: 10, order, project: 'alpha', after: b.id })).toEqual({ data: [], hasMore: false });
            expect(await store.listFiles({ limit: 10, order, project: 'alpha', after: b.id, purpose: 'batch' })).toEqual({ data: [], hasMore: false });
          }
          // Unscoped (admin) lists still take any cursor.
          expect((await store.listFiles({ limit: 10, order: 'asc', after: beta[0]!.id })).data.length).toBe(4);
          expect((await store.listFiles({ limit: 10, order: 'asc', project: 'alpha', after: alpha[0]!.id })).data).toEqual(alpha.slice(1));
        });
      }

      it('listBatches with a project shows only that project, newest first; another project’s cursor gives an empty page', async () => {
        const alpha: BatchRecord[] = [];
        const beta: BatchRecord[] = [];
        for (let i = 0; i < 3; i++) {
          alpha.push(...(await seedBatches(1, () => ({ project: 'alpha' }))));
          beta.push(...(await seedBatches(1, () => ({ project: 'beta' }))));
        }
        const a = await store.listBatches({ limit: 10, project: 'alpha' });
        expect(a.data).toEqual([...alpha].reverse());
        expect(a.hasMore).toBe(false);
        expect(ids((await store.listBatches({ limit: 10, project: 'beta' })).data)).toEqual(ids(beta).reverse());
        expect((await store.listBatches({ limit: 10 })).data).toHaveLength(6);
        expect((await store.listBatches({ limit: 3, project: 'alpha' })).hasMore).toBe(false);
        const first = await store.listBatches({ limit: 2, project: 'alpha' });
        expect(first.hasMore).toBe(true);
        expect(ids((await store.listBatches({ limit: 2, project: 'alpha', after: first.data.at(-1)!.id })).data)).toEqual([alpha[0]!.id]);
        for (const b of beta) expect(await store.listBatches({ limit: 10, project: 'alpha', after: b.id })).toEqual({ data: [], hasMore: false });
        expect(ids((await store.listBatches({ limit: 10, after: beta[2]!.id })).data)).toEqual([alpha[2]!.id, beta[1]!.id, alpha[1]!.id, beta[0]!.id, alpha[0]!.id]);
      });

      it('bytesByPurpose sums one project’s files, or all; storedBytesByProject each project’s', async () => {
        await seedTwoProjects();
        expect(await store.bytesByPurpose('alpha')).toEqual({ batch: 100 + 101 + 102 });
        expect(await store.bytesByPurpose('beta')).toEqual({ batch: 1000 + 3000, batch_output: 2000 });
        expect(await store.bytesByPurpose()).toEqual({ batch: 303 + 4000, batch_output: 2000 });
        expect(await store.bytesByPurpose('gamma')).toEqual({});
        expect(await store.storedBytesByProject()).toEqual({ alpha: 303, beta: 6000 });
      });

      it('countBatchesByStatus counts one project’s batches, or all', async () => {
        await seedBatches(2, () => ({ project: 'alpha', status: 'completed', completedAt: T0 + 1 }));
        await seedBatches(1, () => ({ project: 'alpha', status: 'in_progress' }));
        await seedBatches(3, () => ({ project: 'beta', status: 'in_progress' }));
        await seedBatches(1, () => ({ project: 'beta', status: 'failed' }));
        expect(await store.countBatchesByStatus('alpha')).toEqual({ completed: 2, in_progress: 1 });
        expect(await store.countBatchesByStatus('beta')).toEqual({ in_progress: 3, failed: 1 });
        expect(await store.countBatchesByStatus()).toEqual({ completed: 2, in_progress: 4, failed: 1 });
        expect(await store.countBatchesByStatus('gamma')).toEqual({});
      });
    });

    describe('projects: usage and quotas', () => {
      it('projectUsage: stored bytes of every purpose, unfinished batches, unanswered requests', async () => {
        expect(await store.projectUsage('alpha')).toEqual({ storedBytes: 0, activeBatches: 0, queuedRequests: 0 });
        const input7 = fileFixture({ project: 'alpha', bytes: 700, lines: 7 });
        const inputUnknown = fileFixture({ project: 'alpha', bytes: 50, lines: null });
        await store.insertFile(input7);
        await store.insertFile(inputUnknown);
        await store.insertFile(fileFixture({ project: 'alpha', purpose: 'batch_output', bytes: 300 }));
        await store.insertFile(fileFixture({ project: 'beta', bytes: 10_000, lines: 100 }));
        // Running: total - completed - failed are still to answer.
        await store.insertBatch(batchFixture({ project: 'alpha', status: 'in_progress', inputFileId: input7.id, requestCounts: { total: 10, completed: 3, failed: 2 } }));
        // Validating: its input file's lines.
        await store.insertBatch(batchFixture({ project: 'alpha', status: 'validating', inputFileId: input7.id }));
        // Finished batches hold nothing; a batch of another project does not count.
        for (const status of ['completed', 'failed', 'expired', 'cancelled'] as const) {
          await store.insertBatch(batchFixture({ project: 'alpha', status, inputFileId: input7.id, requestCounts: { total: 10, completed: 1, failed: 0 } }));
        }
        await store.insertBatch(batchFixture({ project: 'beta', status: 'validating', inputFileId: input7.id }));
        expect(await store.projectUsage('alpha')).toEqual({ storedBytes: 1050, activeBatches: 2, queuedRequests: 5 + 7 });
        // Other unfinished statuses count as active batches.
        await store.insertBatch(batchFixture({ project: 'alpha', status: 'cancelling', inputFileId: inputUnknown.id }));
        await store.insertBatch(batchFixture({ project: 'alpha', status: 'finalizing', inputFileId: inputUnknown.id }));
        expect((await store.projectUsage('alpha')).activeBatches).toBe(4);
        expect(await store.projectUsage('beta')).toEqual({ storedBytes: 10_000, activeBatches: 1, queuedRequests: 7 });
        // Progress moves the count.
        const running = (await store.listBatches({ limit: 100, project: 'alpha' })).data.find((b) => b.status === 'in_progress')!;
        await store.saveProgress(running.id, { total: 10, completed: 9, failed: 1 }, emptyUsage());
        expect((await store.projectUsage('alpha')).queuedRequests).toBe(7);
      });

      it('insertFile with a limit inserts up to the limit exactly and refuses past it, writing nothing', async () => {
        await store.insertFile(fileFixture({ project: 'alpha', bytes: 600 }));
        await store.insertFile(fileFixture({ project: 'alpha', purpose: 'batch_output', bytes: 300 }));
        await store.insertFile(fileFixture({ project: 'beta', bytes: 5000 }));
        const over = fileFixture({ project: 'alpha', bytes: 101 });
        expect(await store.insertFile(over, 1000)).toBe(false);
        expect(await store.getFile(over.id)).toBeNull();
        expect((await store.listFiles({ limit: 10, order: 'asc', project: 'alpha' })).data).toHaveLength(2);
        expect((await store.projectUsage('alpha')).storedBytes).toBe(900);

        const exact = fileFixture({ project: 'alpha', bytes: 100 });
        expect(await store.insertFile(exact, 1000)).toBe(true);
        expect(await store.getFile(exact.id)).toEqual(exact);
        // Full: one more byte does not fit.
        const one = fileFixture({ project: 'alpha', bytes: 1 });
        expect(await store.insertFile(one, 1000)).toBe(false);
        expect(await store.getFile(one.id)).toBeNull();
        // No limit; and another project's bytes never count.
        const free = fileFixture({ project: 'alpha', bytes: 1_000_000 });
        expect(await store.insertFile(free, null)).toBe(true);
        const gamma = fileFixture({ project: 'gamma', bytes: 1000 });
        expect(await store.insertFile(gamma, 1000)).toBe(true);
        expect(await store.getFile(gamma.id)).toEqual(gamma);
      });

      it('insertFile with a limit lets exactly one of two racing inserts take the last bytes', async () => {
        const a = fileFixture({ project: 'alpha', bytes: 600 });
        const b = fileFixture({ project: 'alpha', bytes: 600 });
        const results = await Promise.all([store.insertFile(a, 1000), store.insertFile(b, 1000)]);
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await store.projectUsage('alpha')).storedBytes).toBe(600);
      });

      it('insertBatch with a quota refuses past maxActiveBatches, naming the limit and writing nothing', async () => {
        await seedBatches(2, () => ({ project: 'alpha', status: 'in_progress' }));
        await seedBatches(3, () => ({ project: 'alpha', status: 'completed', completedAt: T0 + 1 }));
        await seedBatches(5, () => ({ project: 'beta', status: 'in_progress' }));
        const refused = batchFixture({ project: 'alpha' });
        expect(await store.insertBatch(refused, { requests: 1, maxActiveBatches: 2, maxQueuedRequests: null })).toBe('maxActiveBatches');
        expect(await store.getBatch(refused.id)).toBeNull();
        expect(await store.countBatchesByStatus('alpha')).toEqual({ in_progress: 2, completed: 3 });
        const fits = batchFixture({ project: 'alpha' });
        expect(await store.insertBatch(fits, { requests: 1, maxActiveBatches: 3, maxQueuedRequests: null })).toBeNull();
        expect(await store.getBatch(fits.id)).toEqual(fits);
        const unlimited = batchFixture({ project: 'alpha' });
        expect(await store.insertBatch(unlimited, { requests: 1, maxActiveBatches: null, maxQueuedRequests: null })).toBeNull();
        // Beta's five do not count against gamma.
        expect(await store.insertBatch(batchFixture({ project: 'gamma' }), { requests: 1, maxActiveBatches: 1, maxQueuedRequests: null })).toBeNull();
      });

      it('insertBatch with a quota refuses past maxQueuedRequests, naming the limit and writing nothing', async () => {
        const input = fileFixture({ project: 'alpha', lines: 4 });
        await store.insertFile(input);
        await store.insertBatch(batchFixture({ project: 'alpha', status: 'in_progress', inputFileId: input.id, requestCounts: { total: 6, completed: 1, failed: 1 } }));
        await store.insertBatch(batchFixture({ project: 'alpha', status: 'validating', inputFileId: input.id }));
        await store.insertBatch(batchFixture({ project: 'beta', status: 'validating', inputFileId: input.id }));
        // alpha holds 4 + 4 = 8 queued requests.
        const refused = batchFixture({ project: 'alpha' });
        expect(await store.insertBatch(refused, { requests: 3, maxActiveBatches: null, maxQueuedRequests: 10 })).toBe('maxQueuedRequests');
        expect(await store.getBatch(refused.id)).toBeNull();
        expect((await store.listBatches({ limit: 10, project: 'alpha' })).data).toHaveLength(2);
        const exact = batchFixture({ project: 'alpha' });
        expect(await store.insertBatch(exact, { requests: 2, maxActiveBatches: null, maxQueuedRequests: 10 })).toBeNull();
        expect(await store.getBatch(exact.id)).toEqual(exact);
        expect(await store.insertBatch(batchFixture({ project: 'alpha' }), { requests: 0, maxActiveBatches: null, maxQueuedRequests: null })).toBeNull();
      });
    });

    describe('projects: names and limits', () => {
      it('listProjects names every project holding a file, a batch, a key or limits, once, sorted', async () => {
        expect(await store.listProjects()).toEqual([]);
        await store.insertFile(fileFixture({ project: 'zeta' }));
        await store.insertFile(fileFixture({ project: 'zeta' }));
        await store.insertBatch(batchFixture({ project: 'beta' }));
        await store.insertApiKey(apiKeyFixture({ project: 'kappa' }));
        await store.setProjectLimits('alpha', { maxActiveBatches: 2 });
        await store.insertBatch(batchFixture({ project: 'zeta' }));
        expect(await store.listProjects()).toEqual(['alpha', 'beta', 'kappa', 'zeta']);
      });

      it('getProjectLimits / setProjectLimits: unset is null, undefined keeps, null clears, 0 is kept as 0', async () => {
        const none = { maxStoredBytes: null, maxActiveBatches: null, maxQueuedRequests: null };
        expect(await store.getProjectLimits('alpha')).toEqual(none);
        await store.setProjectLimits('alpha', { maxStoredBytes: 5000 });
        expect(await store.getProjectLimits('alpha')).toEqual({ ...none, maxStoredBytes: 5000 });
        await store.setProjectLimits('alpha', { maxActiveBatches: 3, maxQueuedRequests: 0 });
        expect(await store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: 3, maxQueuedRequests: 0 });
        await store.setProjectLimits('alpha', { maxStoredBytes: undefined, maxActiveBatches: null });
        expect(await store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: null, maxQueuedRequests: 0 });
        await store.setProjectLimits('alpha', {});
        expect(await store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: null, maxQueuedRequests: 0 });
        // Per project.
        expect(await store.getProjectLimits('beta')).toEqual(none);
        await store.setProjectLimits('beta', { maxQueuedRequests: 7 });
        expect(await store.getProjectLimits('alpha')).toEqual({ maxStoredBytes: 5000, maxActiveBatches: null, maxQueuedRequests: 0 });
        expect(await store.getProjectLimits('beta')).toEqual({ ...none, maxQueuedRequests: 7 });
      });
    });

    describe('api keys', () => {
      it('insert, find by hash (revoked or not), list oldest first, count', async () => {
        expect(await store.countApiKeys()).toBe(0);
        expect(await store.listApiKeys()).toEqual([]);
        const a = apiKeyFixture({ project: 'alpha', name: 'ünïcode "label"', createdAt: T0 + 5 });
        const b = apiKeyFixture({ project: 'ops', admin: true, createdAt: T0 });
        await store.insertApiKey(a);
        await store.insertApiKey(b);
        expect(await store.findApiKeyByHash(a.hash)).toEqual(a);
        expect(await store.findApiKeyByHash(b.hash)).toEqual(b);
        expect(await store.findApiKeyByHash(hashApiKey('not a key'))).toBeNull();
        expect(await store.listApiKeys()).toEqual([a, b]);
        expect(await store.countApiKeys()).toBe(2);
      });

      it('revoke: once true, twice false, unknown false; a revoked key is still found and counted', async () => {
        const a = apiKeyFixture();
        const b = apiKeyFixture();
        await store.insertApiKey(a);
        await store.insertApiKey(b);
        expect(await store.revokeApiKey(a.id, T0 + 10)).toBe(true);
        expect(await store.revokeApiKey(a.id, T0 + 20)).toBe(false);
        expect(await store.revokeApiKey('key_unknown', T0 + 20)).toBe(false);
        expect(await store.findApiKeyByHash(a.hash)).toEqual({ ...a, revokedAt: T0 + 10 });
        expect(await store.findApiKeyByHash(b.hash)).toEqual(b);
        expect(await store.countApiKeys()).toBe(2);
        expect(await store.revokeApiKey(b.id, T0 + 30)).toBe(true);
        expect(await store.countApiKeys()).toBe(2);
        expect((await store.listApiKeys()).map((k) => k.revokedAt)).toEqual([T0 + 10, T0 + 30]);
      });

      it('touch sets last use of that key only', async () => {
        const a = apiKeyFixture();
        const b = apiKeyFixture();
        await store.insertApiKey(a);
        await store.insertApiKey(b);
        await store.touchApiKey(a.id, T0 + 99);
        expect(await store.findApiKeyByHash(a.hash)).toEqual({ ...a, lastUsedAt: T0 + 99 });
        expect(await store.findApiKeyByHash(b.hash)).toEqual(b);
        await store.touchApiKey(a.id, T0 + 120);
        expect((await store.findApiKeyByHash(a.hash))?.lastUsedAt).toBe(T0 + 120);
        await expect(store.touchApiKey('key_unknown', T0)).resolves.toBeUndefined();
      });
    });

    it('close is idempotent', async () => {
      await store.close();
      await expect(store.close()).resolves.toBeUndefined();
    });
  });
}
