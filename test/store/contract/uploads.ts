import { describe, expect, it } from 'vitest';

import { newUploadId, newUploadPartId } from '../../../src/domain/index.js';
import type { UploadPartRecord, UploadRecord } from '../../../src/store/upload-store.js';
import type { ContractContext } from './context.js';
import { fileFixture, ids, LONG_MS, MEDIUM_MS, PAST_MEDIUM_MS, sleep, T0 } from './fixtures.js';

export function uploadFixture(overrides: Partial<UploadRecord> = {}): UploadRecord {
  return {
    id: newUploadId(),
    project: 'default',
    filename: 'big.jsonl',
    purpose: 'batch',
    bytes: 100,
    mimeType: 'application/jsonl',
    createdAt: T0,
    expiresAt: T0 + 3600,
    status: 'pending',
    fileId: null,
    fileExpiresAfter: null,
    ...overrides,
  };
}

export function partFixture(uploadId: string, bytes: number, overrides: Partial<UploadPartRecord> = {}): UploadPartRecord {
  const id = overrides.id ?? newUploadPartId();
  return { id, uploadId, blobKey: `uploads/${uploadId}/${id}`, bytes, createdAt: T0 + 1, ...overrides };
}

/** A time before every fixture's expiry. */
const NOW = T0 + 10;

export function uploadsContract(t: ContractContext): void {
  describe('uploads', () => {
    it('round-trips an upload, with and without a file lifetime; null for an unknown id; a duplicate id is refused', async () => {
      const plain = uploadFixture();
      const full = uploadFixture({ fileExpiresAfter: 7200, filename: 'ünïcode "name".jsonl', bytes: 8 * 2 ** 30 });
      await t.store.uploads.insert(plain);
      await t.store.uploads.insert(full);
      expect(await t.store.uploads.get(plain.id)).toEqual(plain);
      expect(await t.store.uploads.get(full.id)).toEqual(full);
      expect(await t.store.uploads.get('upload_unknown')).toBeNull();
      await expect(t.store.uploads.insert({ ...plain, filename: 'other.jsonl' })).rejects.toThrow();
      expect(await t.store.uploads.get(plain.id)).toEqual(plain);
    });

    it('refuses to insert an upload that is not new', async () => {
      await expect(t.store.uploads.insert(uploadFixture({ status: 'completed' }))).rejects.toThrow();
      await expect(t.store.uploads.insert(uploadFixture({ fileId: 'file-x' }))).rejects.toThrow();
    });

    it('adds parts up to exactly the declared bytes, lists them oldest first, and refuses one byte more', async () => {
      const u = uploadFixture({ bytes: 100 });
      await t.store.uploads.insert(u);
      const parts = [partFixture(u.id, 40), partFixture(u.id, 10), partFixture(u.id, 50)];
      for (const p of parts) expect(await t.store.uploads.addPart(p, NOW)).toBe('added');
      expect(await t.store.uploads.listParts(u.id)).toEqual(parts);
      expect(await t.store.uploads.addPart(partFixture(u.id, 1), NOW)).toBe('too_many_bytes');
      expect(ids(await t.store.uploads.listParts(u.id))).toEqual(ids(parts));
      expect(await t.store.uploads.listParts('upload_unknown')).toEqual([]);
    });

    it('a part over the remaining bytes is refused whole; a smaller one still fits', async () => {
      const u = uploadFixture({ bytes: 100 });
      await t.store.uploads.insert(u);
      expect(await t.store.uploads.addPart(partFixture(u.id, 60), NOW)).toBe('added');
      expect(await t.store.uploads.addPart(partFixture(u.id, 41), NOW)).toBe('too_many_bytes');
      expect(await t.store.uploads.addPart(partFixture(u.id, 40), NOW)).toBe('added');
    });

    it('refuses parts for an unknown, expired, cancelled or completed upload', async () => {
      expect(await t.store.uploads.addPart(partFixture('upload_unknown', 1), NOW)).toBe('not_pending');
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      // At its expiry (not only after it was swept).
      expect(await t.store.uploads.addPart(partFixture(u.id, 1), u.expiresAt)).toBe('not_pending');
      expect(await t.store.uploads.addPart(partFixture(u.id, 1), u.expiresAt - 1)).toBe('added');
      expect((await t.store.uploads.cancel(u.id))?.status).toBe('cancelled');
      expect(await t.store.uploads.addPart(partFixture(u.id, 1), NOW)).toBe('not_pending');
      expect(await t.store.uploads.listParts(u.id)).toHaveLength(1);
    });

    it('parts added concurrently never pass the declared bytes together', async () => {
      const u = uploadFixture({ bytes: 100 });
      await t.store.uploads.insert(u);
      const stores = t.hasPeers ? [t.store, await t.peer(), await t.peer()] : [t.store];
      const results = await Promise.all(Array.from({ length: 9 }, (_, i) => stores[i % stores.length]!.uploads.addPart(partFixture(u.id, 30), NOW)));
      expect(results.filter((r) => r === 'added')).toHaveLength(3);
      expect(results.filter((r) => r === 'too_many_bytes')).toHaveLength(6);
      const total = (await t.store.uploads.listParts(u.id)).reduce((n, p) => n + p.bytes, 0);
      expect(total).toBe(90);
    });

    it('complete: holding the claim, marks it completed and records the file in the same write', async () => {
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      expect(await t.store.uploads.claim(u.id, 'tok', NOW, LONG_MS)).toBe(true);
      const file = fileFixture({ bytes: 100, lines: 3 });
      expect(await t.store.uploads.complete(u.id, 'tok', file, null)).toBe('completed');
      expect(await t.store.uploads.get(u.id)).toEqual({ ...u, status: 'completed', fileId: file.id });
      expect(await t.store.getFile(file.id)).toEqual(file);
      // Once: the claim went with the status.
      expect(await t.store.uploads.complete(u.id, 'tok', fileFixture(), null)).toBe('lost');
      expect(await t.store.uploads.claim(u.id, 'tok2', NOW, LONG_MS)).toBe(false);
      expect(await t.store.uploads.cancel(u.id)).toBeNull();
      expect((await t.store.uploads.get(u.id))?.status).toBe('completed');
    });

    it('complete needs the claim: another token, no claim, or an unknown upload write nothing', async () => {
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      const f = fileFixture();
      expect(await t.store.uploads.complete(u.id, 'tok', f, null)).toBe('lost');
      expect(await t.store.uploads.claim(u.id, 'tok', NOW, LONG_MS)).toBe(true);
      expect(await t.store.uploads.complete(u.id, 'other', f, null)).toBe('lost');
      expect(await t.store.uploads.complete('upload_unknown', 'tok', f, null)).toBe('lost');
      expect(await t.store.getFile(f.id)).toBeNull();
      expect((await t.store.uploads.get(u.id))?.status).toBe('pending');
    });

    it('complete within the stored-bytes quota, counted with the file; over it nothing is written and the claim is kept', async () => {
      await t.store.insertFile(fileFixture({ bytes: 600 }));
      await t.store.insertFile(fileFixture({ bytes: 5000, project: 'other' }));
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      expect(await t.store.uploads.claim(u.id, 'tok', NOW, LONG_MS)).toBe(true);
      const big = fileFixture({ bytes: 401 });
      expect(await t.store.uploads.complete(u.id, 'tok', big, 1000)).toBe('quota');
      expect(await t.store.getFile(big.id)).toBeNull();
      expect((await t.store.uploads.get(u.id))?.status).toBe('pending');
      const fits = fileFixture({ bytes: 400 });
      expect(await t.store.uploads.complete(u.id, 'tok', fits, 1000)).toBe('completed');
      expect((await t.store.projectUsage('default')).storedBytes).toBe(1000);
    });

    it('one claim at a time: a live claim refuses others, can be renewed and released; an expired one is taken over', async () => {
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      expect(await t.store.uploads.claim(u.id, 'a', NOW, MEDIUM_MS)).toBe(true);
      expect(await t.store.uploads.claim(u.id, 'b', NOW, LONG_MS)).toBe(false);
      await sleep(PAST_MEDIUM_MS);
      // A's claim lapsed: it cannot renew it, and B takes it.
      expect(await t.store.uploads.renewClaim(u.id, 'a', LONG_MS)).toBe(false);
      expect(await t.store.uploads.claim(u.id, 'b', NOW, LONG_MS)).toBe(true);
      expect(await t.store.uploads.complete(u.id, 'a', fileFixture(), null)).toBe('lost');
      expect(await t.store.uploads.renewClaim(u.id, 'b', LONG_MS)).toBe(true);
      // Releasing with the wrong token does nothing; with the right one frees it.
      await t.store.uploads.releaseClaim(u.id, 'a');
      expect(await t.store.uploads.claim(u.id, 'c', NOW, LONG_MS)).toBe(false);
      await t.store.uploads.releaseClaim(u.id, 'b');
      expect(await t.store.uploads.claim(u.id, 'c', NOW, LONG_MS)).toBe(true);
      expect((await t.store.uploads.get(u.id))?.status).toBe('pending');
    });

    it('a claim is refused at or past the expiry, and for an upload that is not pending', async () => {
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      expect(await t.store.uploads.claim(u.id, 'a', u.expiresAt, LONG_MS)).toBe(false);
      expect(await t.store.uploads.claim('upload_unknown', 'a', NOW, LONG_MS)).toBe(false);
      await t.store.uploads.cancel(u.id);
      expect(await t.store.uploads.claim(u.id, 'a', NOW, LONG_MS)).toBe(false);
    });

    it('gives the claim to exactly one of many concurrent claimers', async () => {
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      const stores = t.hasPeers ? [t.store, await t.peer()] : [t.store];
      const won = await Promise.all(Array.from({ length: 8 }, (_, i) => stores[i % stores.length]!.uploads.claim(u.id, `tok-${i}`, NOW, LONG_MS)));
      expect(won.filter(Boolean)).toHaveLength(1);
    });

    it('cancel: pending → cancelled once, even while a completion holds the claim (whose write then fails)', async () => {
      const u = uploadFixture();
      await t.store.uploads.insert(u);
      expect(await t.store.uploads.claim(u.id, 'tok', NOW, LONG_MS)).toBe(true);
      expect(await t.store.uploads.cancel(u.id)).toEqual({ ...u, status: 'cancelled' });
      expect(await t.store.uploads.cancel(u.id)).toBeNull();
      expect(await t.store.uploads.cancel('upload_unknown')).toBeNull();
      const f = fileFixture();
      expect(await t.store.uploads.complete(u.id, 'tok', f, null)).toBe('lost');
      expect(await t.store.getFile(f.id)).toBeNull();
      expect(await t.store.uploads.renewClaim(u.id, 'tok', LONG_MS)).toBe(false);
    });

    it('lists pending uploads at or past their expiry, oldest expiry first, skipping live claims', async () => {
      const late = uploadFixture({ expiresAt: T0 + 50 });
      const early = uploadFixture({ expiresAt: T0 + 20 });
      const future = uploadFixture({ expiresAt: T0 + 500 });
      const claimed = uploadFixture({ expiresAt: T0 + 30 });
      const done = uploadFixture({ expiresAt: T0 + 10 });
      for (const u of [late, early, future, claimed, done]) await t.store.uploads.insert(u);
      expect(await t.store.uploads.claim(claimed.id, 'tok', T0 + 29, LONG_MS)).toBe(true);
      await t.store.uploads.cancel(done.id);
      expect(ids(await t.store.uploads.listExpired(T0 + 50, 10))).toEqual([early.id, late.id]);
      expect(ids(await t.store.uploads.listExpired(T0 + 50, 1))).toEqual([early.id]);
      expect(await t.store.uploads.listExpired(T0 + 19, 10)).toEqual([]);
      // Expire: a compare-and-set, once, only when expired at `now` and unclaimed.
      expect(await t.store.uploads.expire(future.id, T0 + 50)).toBe(false);
      expect(await t.store.uploads.expire(claimed.id, T0 + 50)).toBe(false);
      expect(await t.store.uploads.expire(early.id, T0 + 50)).toBe(true);
      expect(await t.store.uploads.expire(early.id, T0 + 50)).toBe(false);
      expect(await t.store.uploads.expire(done.id, T0 + 50)).toBe(false);
      expect((await t.store.uploads.get(early.id))?.status).toBe('expired');
      expect((await t.store.uploads.get(done.id))?.status).toBe('cancelled');
      // An expired claim no longer protects it.
      await t.store.uploads.releaseClaim(claimed.id, 'tok');
      expect(await t.store.uploads.expire(claimed.id, T0 + 50)).toBe(true);
    });

    it('an upload is expired by exactly one of many concurrent sweepers', async () => {
      const u = uploadFixture({ expiresAt: T0 + 20 });
      await t.store.uploads.insert(u);
      const stores = t.hasPeers ? [t.store, await t.peer()] : [t.store];
      const won = await Promise.all(Array.from({ length: 6 }, (_, i) => stores[i % stores.length]!.uploads.expire(u.id, T0 + 20)));
      expect(won.filter(Boolean)).toHaveLength(1);
    });

    it('part rows outlive the status change until deleteParts; only uploads no longer pending are unswept', async () => {
      const pending = uploadFixture();
      const cancelled = uploadFixture();
      const completed = uploadFixture({ bytes: 10 });
      for (const u of [pending, cancelled, completed]) await t.store.uploads.insert(u);
      for (const u of [pending, cancelled]) {
        await t.store.uploads.addPart(partFixture(u.id, 5), NOW);
        await t.store.uploads.addPart(partFixture(u.id, 5), NOW);
      }
      await t.store.uploads.addPart(partFixture(completed.id, 10), NOW);
      await t.store.uploads.cancel(cancelled.id);
      await t.store.uploads.claim(completed.id, 'tok', NOW, LONG_MS);
      expect(await t.store.uploads.complete(completed.id, 'tok', fileFixture({ bytes: 10 }), null)).toBe('completed');
      expect((await t.store.uploads.listUnswept(10)).sort()).toEqual([cancelled.id, completed.id].sort());
      expect(await t.store.uploads.listUnswept(1)).toHaveLength(1);
      // A pending upload's parts are never forgotten.
      expect(await t.store.uploads.deleteParts(pending.id)).toBe(0);
      expect(await t.store.uploads.listParts(pending.id)).toHaveLength(2);
      expect(await t.store.uploads.deleteParts(cancelled.id)).toBe(2);
      expect(await t.store.uploads.deleteParts(cancelled.id)).toBe(0);
      expect(await t.store.uploads.deleteParts(completed.id)).toBe(1);
      expect(await t.store.uploads.listUnswept(10)).toEqual([]);
    });
  });
}
