import { describe, expect, it } from 'vitest';

import type { BatchRecord, BatchStatus, FilePurpose, FileRecord } from '../../src/domain/index.js';
import { SqliteMetaStore } from '../../src/store/sqlite/sqlite-meta-store.js';
import { batchFixture, fileFixture } from '../store/meta-store-contract.js';

const file = (id: string, expiresAt: number | null, purpose: FilePurpose = 'batch', bytes = 10): FileRecord =>
  fileFixture({ id, expiresAt, purpose, bytes });

const batch = (id: string, inputFileId: string, status: BatchStatus): BatchRecord => batchFixture({ id, inputFileId, status });

describe('MetaStore expiry and storage queries', () => {
  it('lists and deletes expired files, never the input of an unfinished batch', async () => {
    const s = SqliteMetaStore.open(':memory:');
    await s.insertFile(file('file-old', 100));
    await s.insertFile(file('file-busy', 50));
    await s.insertFile(file('file-later', 1000));
    await s.insertFile(file('file-forever', null));
    await s.insertFile(file('file-done', 10));
    await s.insertBatch(batch('batch_run', 'file-busy', 'in_progress'));
    await s.insertBatch(batch('batch_end', 'file-done', 'completed'));

    expect((await s.listExpiredFiles(500, 10)).map((f) => f.id)).toEqual(['file-done', 'file-old']);
    expect((await s.listExpiredFiles(500, 1)).map((f) => f.id)).toEqual(['file-done']);
    expect(await s.deleteExpiredFile('file-busy', 500)).toBe(false);
    expect(await s.deleteExpiredFile('file-later', 500)).toBe(false);
    expect(await s.deleteExpiredFile('file-old', 500)).toBe(true);
    expect(await s.getFile('file-old')).toBeNull();

    await s.transition('batch_run', ['in_progress'], 'cancelled', 600);
    expect((await s.listExpiredFiles(600, 10)).map((f) => f.id)).toEqual(['file-done', 'file-busy']);
    expect(await s.deleteExpiredFile('file-busy', 600)).toBe(true);
    await s.close();
  });

  it('sums bytes by purpose and counts batches by status', async () => {
    const s = SqliteMetaStore.open(':memory:');
    expect(await s.bytesByPurpose()).toEqual({});
    await s.insertFile(file('file-a', null, 'batch', 5));
    await s.insertFile(file('file-b', null, 'batch', 7));
    await s.insertFile(file('file-c', null, 'batch_output', 11));
    expect(await s.bytesByPurpose()).toEqual({ batch: 12, batch_output: 11 });
    await s.insertBatch(batch('batch_1', 'file-a', 'completed'));
    await s.insertBatch(batch('batch_2', 'file-a', 'completed'));
    await s.insertBatch(batch('batch_3', 'file-b', 'validating'));
    expect(await s.countBatchesByStatus()).toEqual({ completed: 2, validating: 1 });
    await s.close();
  });
});
