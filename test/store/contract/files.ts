import { describe, expect, it } from 'vitest';

import { type FilePurpose, type FileRecord, newBatchId } from '../../../src/domain/index.js';
import type { ContractContext } from './context.js';
import { batchFixture, fileFixture, ids, T0 } from './fixtures.js';

export function filesContract(t: ContractContext): void {
  /** Inserts `n` files in order and returns them. */
  async function seedFiles(n: number, overrides: (i: number) => Partial<FileRecord> = () => ({})): Promise<FileRecord[]> {
    const files: FileRecord[] = [];
    for (let i = 0; i < n; i++) {
      const f = fileFixture({ filename: `f${i}.jsonl`, ...overrides(i) });
      await t.store.insertFile(f);
      files.push(f);
    }
    return files;
  }

  describe('files', () => {
    it('round-trips a file, with and without optional fields', async () => {
      const plain = fileFixture();
      const full = fileFixture({ purpose: 'batch_output', expiresAt: T0 + 3600, batchId: newBatchId(), bytes: 0, filename: 'ünïcode "name".jsonl', lines: 7 });
      const huge = fileFixture({ bytes: 2 ** 40 + 3, lines: 2 ** 33 });
      for (const f of [plain, full, huge]) await t.store.insertFile(f);
      expect(await t.store.getFile(plain.id)).toEqual(plain);
      expect(await t.store.getFile(full.id)).toEqual(full);
      // Past 2^32, still a JS number.
      expect(await t.store.getFile(huge.id)).toEqual(huge);
    });

    it('returns null for an unknown file', async () => {
      expect(await t.store.getFile('file-doesnotexist')).toBeNull();
    });

    it('rejects a duplicate id', async () => {
      const f = fileFixture();
      await t.store.insertFile(f);
      await expect(t.store.insertFile({ ...f, filename: 'other' })).rejects.toThrow();
      expect(await t.store.getFile(f.id)).toEqual(f);
    });

    it('lists in insertion order, asc and desc, regardless of createdAt', async () => {
      const files = await seedFiles(4, (i) => ({ createdAt: T0 - i }));
      const asc = await t.store.listFiles({ limit: 10, order: 'asc' });
      expect(asc.data).toEqual(files);
      expect(asc.hasMore).toBe(false);
      const desc = await t.store.listFiles({ limit: 10, order: 'desc' });
      expect(ids(desc.data)).toEqual(ids(files).reverse());
      expect(desc.hasMore).toBe(false);
    });

    it('returns an empty page from an empty store', async () => {
      expect(await t.store.listFiles({ limit: 10, order: 'desc' })).toEqual({ data: [], hasMore: false });
      expect(await t.store.listFiles({ limit: 10, order: 'asc', purpose: 'batch' })).toEqual({ data: [], hasMore: false });
    });

    it('computes hasMore exactly', async () => {
      await seedFiles(3);
      expect((await t.store.listFiles({ limit: 2, order: 'asc' })).hasMore).toBe(true);
      expect((await t.store.listFiles({ limit: 3, order: 'asc' })).hasMore).toBe(false);
      expect((await t.store.listFiles({ limit: 4, order: 'asc' })).hasMore).toBe(false);
      const exact = await t.store.listFiles({ limit: 3, order: 'desc' });
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
          const page = await t.store.listFiles({ limit: 3, order, after });
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
        const page = await t.store.listFiles({ limit: 10, order, after: files[2]!.id });
        expect(ids(page.data)).toEqual(order === 'asc' ? ids(files.slice(3)) : ids(files.slice(0, 2)).reverse());
        expect(page.hasMore).toBe(false);
      });

      it(`returns an empty page after the last item (${order})`, async () => {
        const files = await seedFiles(3);
        const last = order === 'asc' ? files.at(-1)! : files[0]!;
        expect(await t.store.listFiles({ limit: 10, order, after: last.id })).toEqual({ data: [], hasMore: false });
      });

      it(`returns an empty page for an unknown after id (${order})`, async () => {
        await seedFiles(3);
        expect(await t.store.listFiles({ limit: 10, order, after: 'file-unknown' })).toEqual({ data: [], hasMore: false });
        expect(await t.store.listFiles({ limit: 10, order, after: 'file-unknown', purpose: 'batch' })).toEqual({ data: [], hasMore: false });
      });
    }

    it('filters by purpose, with paging and cursor', async () => {
      const purposes: FilePurpose[] = ['batch', 'batch_output', 'batch', 'user_data', 'batch', 'batch_output', 'batch'];
      const files = await seedFiles(purposes.length, (i) => ({ purpose: purposes[i]! }));
      const batchFiles = files.filter((f) => f.purpose === 'batch');

      expect(ids((await t.store.listFiles({ limit: 10, order: 'asc', purpose: 'batch' })).data)).toEqual(ids(batchFiles));
      const first = await t.store.listFiles({ limit: 2, order: 'desc', purpose: 'batch' });
      expect(ids(first.data)).toEqual(ids(batchFiles).reverse().slice(0, 2));
      expect(first.hasMore).toBe(true);
      const second = await t.store.listFiles({ limit: 2, order: 'desc', purpose: 'batch', after: first.data.at(-1)!.id });
      expect(ids(second.data)).toEqual(ids(batchFiles).reverse().slice(2, 4));
      expect(second.hasMore).toBe(false);
      expect(ids((await t.store.listFiles({ limit: 10, order: 'asc', purpose: 'user_data' })).data)).toEqual([files[3]!.id]);
      expect((await t.store.listFiles({ limit: 10, order: 'asc', purpose: 'vision' })).data).toEqual([]);
    });

    it('positions a purpose-filtered list after a cursor item of another purpose', async () => {
      const purposes: FilePurpose[] = ['batch', 'batch_output', 'batch', 'batch'];
      const files = await seedFiles(purposes.length, (i) => ({ purpose: purposes[i]! }));
      const page = await t.store.listFiles({ limit: 10, order: 'asc', purpose: 'batch', after: files[1]!.id });
      expect(ids(page.data)).toEqual([files[2]!.id, files[3]!.id]);
    });

    it('deletes a file and reports whether a row existed', async () => {
      const [a, b] = await seedFiles(2);
      expect(await t.store.deleteFile(a!.id)).toBe(true);
      expect(await t.store.getFile(a!.id)).toBeNull();
      expect(await t.store.deleteFile(a!.id)).toBe(false);
      expect(await t.store.deleteFile('file-unknown')).toBe(false);
      expect(ids((await t.store.listFiles({ limit: 10, order: 'asc' })).data)).toEqual([b!.id]);
      // A deleted cursor is an unknown cursor.
      expect(await t.store.listFiles({ limit: 10, order: 'asc', after: a!.id })).toEqual({ data: [], hasMore: false });
    });

    it('sums bytes by purpose (an empty store: no purpose at all)', async () => {
      expect(await t.store.bytesByPurpose()).toEqual({});
      await t.store.insertFile(fileFixture({ purpose: 'batch', bytes: 5 }));
      await t.store.insertFile(fileFixture({ purpose: 'batch', bytes: 7 }));
      await t.store.insertFile(fileFixture({ purpose: 'batch_output', bytes: 11 }));
      expect(await t.store.bytesByPurpose()).toEqual({ batch: 12, batch_output: 11 });
    });
  });

  describe('expired files', () => {
    const file = (id: string, expiresAt: number | null): FileRecord => fileFixture({ id, expiresAt, bytes: 10 });

    it('lists expired files oldest expiry first, never the input of an unfinished batch, at most limit', async () => {
      await t.store.insertFile(file('file-old', 100));
      await t.store.insertFile(file('file-busy', 50));
      await t.store.insertFile(file('file-later', 1000));
      await t.store.insertFile(file('file-forever', null));
      await t.store.insertFile(file('file-done', 10));
      await t.store.insertFile(file('file-edge', 500));
      await t.store.insertBatch(batchFixture({ id: 'batch_run', inputFileId: 'file-busy', status: 'in_progress' }));
      await t.store.insertBatch(batchFixture({ inputFileId: 'file-done', status: 'completed' }));

      // expires_at <= now: the file expiring at exactly 500 is expired at 500.
      expect(ids(await t.store.listExpiredFiles(500, 10))).toEqual(['file-done', 'file-old', 'file-edge']);
      expect(ids(await t.store.listExpiredFiles(500, 1))).toEqual(['file-done']);
      expect(await t.store.listExpiredFiles(500, 0)).toEqual([]);
      expect((await t.store.listExpiredFiles(500, 10))[0]).toEqual(file('file-done', 10));
      expect(await t.store.listExpiredFiles(5, 10)).toEqual([]);

      await t.store.transition('batch_run', ['in_progress'], 'failed', 600);
      expect(ids(await t.store.listExpiredFiles(600, 10))).toEqual(['file-done', 'file-busy', 'file-old', 'file-edge']);
    });

    it('deletes an expired file only if it is still expired and no unfinished batch reads it', async () => {
      await t.store.insertFile(file('file-old', 100));
      await t.store.insertFile(file('file-busy', 50));
      await t.store.insertFile(file('file-later', 1000));
      await t.store.insertFile(file('file-forever', null));
      await t.store.insertBatch(batchFixture({ id: 'batch_run', inputFileId: 'file-busy', status: 'validating' }));

      expect(await t.store.deleteExpiredFile('file-busy', 500)).toBe(false);
      expect(await t.store.deleteExpiredFile('file-later', 500)).toBe(false);
      expect(await t.store.deleteExpiredFile('file-forever', 500)).toBe(false);
      expect(await t.store.deleteExpiredFile('file-unknown', 500)).toBe(false);
      expect(await t.store.deleteExpiredFile('file-old', 500)).toBe(true);
      expect(await t.store.getFile('file-old')).toBeNull();
      expect(await t.store.deleteExpiredFile('file-old', 500)).toBe(false);
      expect(await t.store.getFile('file-busy')).not.toBeNull();
      expect(await t.store.getFile('file-later')).not.toBeNull();

      await t.store.transition('batch_run', ['validating'], 'failed', 600);
      expect(await t.store.deleteExpiredFile('file-busy', 600)).toBe(true);
      expect(await t.store.deleteExpiredFile('file-later', 1000)).toBe(true);
    });
  });
}
