import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { describe, expect, it } from 'vitest';

import type { BlobPart, BlobStore } from '../../src/store/blob-store.js';

export interface BlobStoreContractOptions {
  /** A store whose every write fails (e.g. a root under a regular file, a bucket that does not exist). */
  makeBrokenStore?: () => BlobStore | Promise<BlobStore>;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const readText = async (stream: Readable): Promise<string> => (await readAll(stream)).toString('utf8');

export async function put(store: BlobStore, key: string, content: string | Buffer | Buffer[]): Promise<void> {
  const up = store.createUpload(key);
  const chunks = Array.isArray(content) ? content : [Buffer.from(content)];
  await pipeline(Readable.from(chunks), up.stream);
  await up.commit();
}

/** `bytes` of `piece`-sized chunks, as a writer would stream them. */
const chunked = (buf: Buffer, piece = 1024 * 1024): Buffer[] =>
  Array.from({ length: Math.ceil(buf.length / piece) }, (_, i) => buf.subarray(i * piece, (i + 1) * piece));

const settle = (p: Promise<unknown>): Promise<'resolved' | 'rejected'> =>
  p.then(
    () => 'resolved',
    () => 'rejected',
  );

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

const BAD_KEYS = ['../escape', 'files/../../escape', 'files/..', '..', '/etc/passwd', 'files\\x', 'files/a\0b', '', 'files//a', './files/a', 'files/'];

/**
 * The rules of blob-store.ts, for any BlobStore (undici's cacheStoreTests pattern). `makeStore`
 * returns an empty store for each test.
 */
export function blobStoreContract(name: string, makeStore: () => BlobStore | Promise<BlobStore>, opts: BlobStoreContractOptions = {}): void {
  describe(`${name} (BlobStore contract)`, () => {
    describe('uploads', () => {
      it('land at the key only on commit', async () => {
        const store = await makeStore();
        const key = 'batches/batch_x/output.jsonl';
        const up = store.createUpload(key);
        up.stream.write('{"a":1}\n');
        await new Promise((r) => setTimeout(r, 20));
        expect(await store.size(key)).toBeNull();
        up.stream.end('{"b":2}\n');
        await up.commit();
        expect(await readText(store.openRead(key))).toBe('{"a":1}\n{"b":2}\n');
        expect(await store.size(key)).toBe(16);
      });

      it('replace an existing blob', async () => {
        const store = await makeStore();
        await put(store, 'files/file-a.jsonl', 'old content');
        await put(store, 'files/file-a.jsonl', 'new');
        expect(await readText(store.openRead('files/file-a.jsonl'))).toBe('new');
      });

      it('may be empty', async () => {
        const store = await makeStore();
        const up = store.createUpload('files/empty.jsonl');
        up.stream.end();
        await up.commit();
        expect(await store.size('files/empty.jsonl')).toBe(0);
        expect(await readText(store.openRead('files/empty.jsonl'))).toBe('');
      });

      it('refuse a second commit; abort after commit keeps the blob', async () => {
        const store = await makeStore();
        const up = store.createUpload('files/x.jsonl');
        up.stream.end('x');
        await up.commit();
        await expect(up.commit()).rejects.toThrow();
        await up.abort();
        expect(await store.size('files/x.jsonl')).toBe(1);
      });

      it('abort while writing leaves nothing, and may be repeated', async () => {
        const store = await makeStore();
        const up = store.createUpload('files/aborted.jsonl');
        up.stream.write('partial data');
        await new Promise((r) => setTimeout(r, 20));
        await up.abort();
        await expect(up.abort()).resolves.toBeUndefined();
        expect(await store.size('files/aborted.jsonl')).toBeNull();
        await expect(up.commit()).rejects.toThrow();
      });

      it('abort right after createUpload leaves nothing', async () => {
        const store = await makeStore();
        const up = store.createUpload('files/quick.jsonl');
        await up.abort();
        expect(await store.size('files/quick.jsonl')).toBeNull();
      });

      it('abort after the stream ended, without commit, leaves nothing', async () => {
        const store = await makeStore();
        const up = store.createUpload('files/ended.jsonl');
        up.stream.end('all of it');
        await new Promise((r) => setTimeout(r, 50));
        await up.abort();
        expect(await store.size('files/ended.jsonl')).toBeNull();
      });

      it('commit rejects when the writer failed the stream, and nothing lands', async () => {
        const store = await makeStore();
        const up = store.createUpload('files/broken.jsonl');
        up.stream.write('some');
        up.stream.destroy(new Error('boom'));
        await expect(up.commit()).rejects.toThrow('boom');
        await expect(up.abort()).resolves.toBeUndefined();
        expect(await store.size('files/broken.jsonl')).toBeNull();
      });

      it('stream a large blob, which reads back whole and in ranges', async () => {
        const store = await makeStore();
        const data = randomBytes(20 * 1024 * 1024 + 12345);
        await put(store, 'files/large.bin', chunked(data));
        expect(await store.size('files/large.bin')).toBe(data.length);
        expect((await readAll(store.openRead('files/large.bin'))).equals(data)).toBe(true);
        const [start, end] = [5 * 1024 * 1024 - 7, 11 * 1024 * 1024 + 3]; // across part boundaries
        expect((await readAll(store.openRead('files/large.bin', { start, end }))).equals(data.subarray(start, end + 1))).toBe(true);
      });
    });

    describe('reads', () => {
      it('whole blobs and inclusive byte ranges', async () => {
        const store = await makeStore();
        await put(store, 'files/r.txt', '0123456789');
        const read = (o?: { start?: number; end?: number }): Promise<string> => readText(store.openRead('files/r.txt', o));
        expect(await read()).toBe('0123456789');
        expect(await read({})).toBe('0123456789');
        expect(await read({ start: 2, end: 5 })).toBe('2345');
        expect(await read({ start: 7 })).toBe('789');
        expect(await read({ end: 0 })).toBe('0');
        expect(await read({ start: 0, end: 0 })).toBe('0');
        expect(await read({ start: 9, end: 9 })).toBe('9');
        expect(await read({ start: 4, end: 1000 })).toBe('456789');
        expect(await read({ start: 10 })).toBe('');
        expect(await read({ start: 50, end: 60 })).toBe('');
      });

      it('a missing blob fails the stream with ENOENT (not a throw)', async () => {
        const store = await makeStore();
        const whole = store.openRead('files/missing.txt');
        await expect(readAll(whole)).rejects.toMatchObject({ code: 'ENOENT' });
        await expect(readAll(store.openRead('files/missing.txt', { start: 0, end: 3 }))).rejects.toMatchObject({ code: 'ENOENT' });
      });

      it('size is null for a missing blob and for a "directory"', async () => {
        const store = await makeStore();
        expect(await store.size('files/none.jsonl')).toBeNull();
        await put(store, 'batches/batch_y/output.jsonl', 'abc');
        expect(await store.size('batches/batch_y/output.jsonl')).toBe(3);
        expect(await store.size('batches/batch_y')).toBeNull();
        expect(await store.size('batches/batch_y/output.jsonl/deeper')).toBeNull();
      });
    });

    describe('deletes', () => {
      it('delete removes a blob and ignores a missing one', async () => {
        const store = await makeStore();
        await put(store, 'batches/batch_z/output.jsonl', 'o');
        await put(store, 'batches/batch_z/errors.jsonl', 'e');
        await store.delete('batches/batch_z/output.jsonl');
        expect(await store.size('batches/batch_z/output.jsonl')).toBeNull();
        expect(await store.size('batches/batch_z/errors.jsonl')).toBe(1);
        await expect(store.delete('batches/batch_z/output.jsonl')).resolves.toBeUndefined();
        await expect(store.delete('batches/batch_never/output.jsonl')).resolves.toBeUndefined();
      });

      it('deletePrefix leaves the keys it is told to keep', async () => {
        const store = await makeStore();
        for (const k of ['batches/k/segments/a.jsonl', 'batches/k/segments/b.jsonl', 'batches/k/segments/c.jsonl']) await put(store, k, 'x');
        expect(await store.deletePrefix('batches/k/segments/', new Set(['batches/k/segments/b.jsonl']))).toBe(2);
        expect(await store.size('batches/k/segments/a.jsonl')).toBeNull();
        expect(await store.size('batches/k/segments/b.jsonl')).toBe(1);
        expect(await store.size('batches/k/segments/c.jsonl')).toBeNull();
      });

      it('deletePrefix removes exactly the blobs under the prefix and counts them', async () => {
        const store = await makeStore();
        const mine = ['batches/b1/output.jsonl', ...[1, 2, 3, 4, 5].map((i) => `batches/b1/segments/output-${i}.jsonl`)];
        const others = ['batches/b10/output.jsonl', 'batches/b1x', 'files/b1.jsonl'];
        for (const k of [...mine, ...others]) await put(store, k, k);
        expect(await store.deletePrefix('batches/b1/')).toBe(mine.length);
        for (const k of mine) expect(await store.size(k)).toBeNull();
        for (const k of others) expect(await store.size(k)).toBe(k.length);
        expect(await store.deletePrefix('batches/b1/')).toBe(0);
        expect(await store.deletePrefix('batches/nothing/')).toBe(0);
        await expect(store.deletePrefix('batches/b10')).rejects.toThrow(/prefix/);
      });
    });

    describe('keys', () => {
      for (const key of BAD_KEYS) {
        it(`rejects ${JSON.stringify(key)} in every method`, async () => {
          const store = await makeStore();
          expect(() => store.createUpload(key)).toThrow(/Invalid blob key/);
          expect(() => store.openRead(key)).toThrow(/Invalid blob key/);
          expect(() => store.openSegment(key)).toThrow(/Invalid blob key/);
          await expect(store.size(key)).rejects.toThrow(/Invalid blob key/);
          await expect(store.delete(key)).rejects.toThrow(/Invalid blob key/);
          await expect(store.deletePrefix(`${key}/`)).rejects.toThrow(/Invalid blob prefix/);
          await expect(store.compose(key, [])).rejects.toThrow(/Invalid blob key/);
        });
      }
    });

    describe('segments', () => {
      it('exist only once an append reaches storage (durableAppend) or at seal', async () => {
        const store = await makeStore();
        const key = 'batches/b/segments/output-000001-000001-000001.jsonl';
        const seg = store.openSegment(key);
        expect(seg.key).toBe(key);
        expect(await store.size(key)).toBeNull();
        seg.append('{"n":1}');
        seg.append('{"n":2}\n');
        expect([seg.lines, seg.bytes]).toEqual([2, 16]);
        await seg.written();
        expect(await store.size(key)).toBe(store.durableAppend ? 16 : null);
        expect(await seg.seal()).toEqual({ lines: 2, bytes: 16 });
        expect(await readText(store.openRead(key))).toBe('{"n":1}\n{"n":2}\n');
      });

      it('written() waits for every line appended so far', async () => {
        const store = await makeStore();
        const key = 'batches/b/segments/output-000001-000001-000002.jsonl';
        const seg = store.openSegment(key);
        const expected: string[] = [];
        for (let round = 0; round < 4; round++) {
          for (let i = 0; i < 50; i++) {
            const line = `{"custom_id":"r${round}-${i}","ü":"€"}`;
            expected.push(`${line}\n`);
            seg.append(line);
          }
          await seg.written();
          expect(await store.size(key)).toBe(store.durableAppend ? seg.bytes : null);
        }
        await seg.written(); // nothing pending: resolves at once
        expect(seg.lines).toBe(200);
        expect(seg.bytes).toBe(Buffer.byteLength(expected.join('')));
        await seg.seal();
        expect(await readText(store.openRead(key))).toBe(expected.join(''));
      });

      it('written() resolves at the end of the turn of the append, not within it', async () => {
        const store = await makeStore();
        const seg = store.openSegment('batches/b/segments/output-000001-000001-000003.jsonl');
        seg.append('{"n":1}');
        let acknowledged = false;
        const ack = seg.written().then(() => (acknowledged = true));
        for (let i = 0; i < 20; i++) await Promise.resolve();
        expect(acknowledged).toBe(false);
        await ack;
        expect(acknowledged).toBe(true);
        await seg.seal();
      });

      it('an empty segment writes nothing', async () => {
        const store = await makeStore();
        const seg = store.openSegment('batches/b/segments/error-000001-000001-000001.jsonl');
        await seg.written();
        expect(await seg.seal()).toEqual({ lines: 0, bytes: 0 });
        expect(await store.size(seg.key)).toBeNull();
      });

      it('seal may be repeated; appending after it throws', async () => {
        const store = await makeStore();
        const seg = store.openSegment('batches/b/segments/output-000002-000001-000001.jsonl');
        seg.append('a');
        const first = seg.seal();
        expect(() => seg.append('b')).toThrow();
        expect(await first).toEqual({ lines: 1, bytes: 2 });
        expect(await seg.seal()).toEqual({ lines: 1, bytes: 2 });
        expect(() => seg.append('c')).toThrow();
        expect(await readText(store.openRead(seg.key))).toBe('a\n');
      });

      it('writes large lines whole', async () => {
        const store = await makeStore();
        const seg = store.openSegment('batches/b/segments/output-000003-000001-000001.jsonl');
        const big = JSON.stringify({ custom_id: 'c', pad: 'x'.repeat(3_000_000) });
        for (let i = 0; i < 3; i++) seg.append(big);
        await seg.seal();
        expect(await store.size(seg.key)).toBe(3 * (big.length + 1));
      });

      it('discard before seal removes what was written and fails later calls', async () => {
        const store = await makeStore();
        const seg = store.openSegment('batches/b/segments/output-000004-000001-000001.jsonl');
        seg.append('a');
        await seg.written();
        seg.append('b'); // still pending
        const pending = settle(seg.written());
        await seg.discard();
        expect(['resolved', 'rejected']).toContain(await pending); // settles, never hangs
        await nextTurn();
        expect(await store.size(seg.key)).toBeNull();
        expect(() => seg.append('c')).toThrow();
        await expect(seg.written()).rejects.toThrow();
        await expect(seg.seal()).rejects.toThrow();
        await expect(seg.discard()).resolves.toBeUndefined();
      });

      it('discard after seal removes the sealed segment', async () => {
        const store = await makeStore();
        const seg = store.openSegment('batches/b/segments/output-000005-000001-000001.jsonl');
        seg.append('a');
        await seg.seal();
        expect(await store.size(seg.key)).toBe(2);
        await seg.discard();
        expect(await store.size(seg.key)).toBeNull();
      });

      it('discard of a segment that never wrote is fine', async () => {
        const store = await makeStore();
        const seg = store.openSegment('batches/b/segments/output-000006-000001-000001.jsonl');
        await seg.discard();
        expect(await store.size(seg.key)).toBeNull();
      });
    });

    describe('compose', () => {
      it('concatenates the complete bytes of each part: torn tails left out, zero-byte parts skipped', async () => {
        const store = await makeStore();
        const a = store.openSegment('batches/c/segments/output-000001-000001-000001.jsonl');
        a.append('{"n":1}');
        a.append('{"n":2}');
        await a.seal();
        await put(store, 'batches/c/segments/output-000001-000002-000001.jsonl', '{"n":3}\n{"n":4,"tor'); // torn by a crash
        const c = store.openSegment('batches/c/segments/output-000002-000001-000001.jsonl');
        c.append('{"n":5}');
        await c.seal();
        const parts = [
          { key: a.key, bytes: a.bytes },
          { key: 'batches/c/segments/output-000001-000002-000001.jsonl', bytes: 8 },
          { key: 'batches/c/segments/never-written.jsonl', bytes: 0 },
          { key: c.key, bytes: c.bytes },
        ];
        const size = await store.compose('batches/c/output.jsonl', parts);
        const expected = '{"n":1}\n{"n":2}\n{"n":3}\n{"n":5}\n';
        expect(size).toBe(expected.length);
        expect(await readText(store.openRead('batches/c/output.jsonl'))).toBe(expected);
        expect(await store.size(a.key)).toBe(a.bytes); // parts are left in place
        expect(await store.size(c.key)).toBe(c.bytes);
      });

      it('of no bytes at all makes an empty blob', async () => {
        const store = await makeStore();
        expect(await store.compose('batches/c/errors.jsonl', [])).toBe(0);
        expect(await store.size('batches/c/errors.jsonl')).toBe(0);
        expect(await store.compose('batches/c/output.jsonl', [{ key: 'batches/c/segments/none.jsonl', bytes: 0 }])).toBe(0);
        expect(await store.size('batches/c/output.jsonl')).toBe(0);
      });

      it('fails, leaving nothing at the key, when a part is missing or shorter than its bytes', async () => {
        const store = await makeStore();
        await put(store, 'batches/d/segments/a.jsonl', 'x\n');
        await expect(store.compose('batches/d/output.jsonl', [{ key: 'batches/d/segments/missing.jsonl', bytes: 4 }])).rejects.toMatchObject({ code: 'ENOENT' });
        expect(await store.size('batches/d/output.jsonl')).toBeNull();
        await expect(store.compose('batches/d/output.jsonl', [{ key: 'batches/d/segments/a.jsonl', bytes: 3 }])).rejects.toThrow(/fewer/);
        expect(await store.size('batches/d/output.jsonl')).toBeNull();
        await expect(store.compose('batches/d/output.jsonl', [{ key: 'batches/d/segments/a.jsonl', bytes: -1 }])).rejects.toThrow();
        await expect(store.compose('batches/d/output.jsonl', [{ key: '../a', bytes: 1 }])).rejects.toThrow(/Invalid blob key/);
        expect(await store.size('batches/d/output.jsonl')).toBeNull();
      });

      it('streams large parts', async () => {
        const store = await makeStore();
        const datas = [randomBytes(7 * 1024 * 1024), randomBytes(6 * 1024 * 1024 + 1), randomBytes(3 * 1024 * 1024)];
        const parts: BlobPart[] = [];
        for (const [i, data] of datas.entries()) {
          const key = `batches/e/segments/output-${i}.jsonl`;
          await put(store, key, chunked(data));
          parts.push({ key, bytes: data.length - 1000 * i });
        }
        const size = await store.compose('batches/e/output.jsonl', parts);
        const expected = Buffer.concat(datas.map((d, i) => d.subarray(0, parts[i]!.bytes)));
        expect(size).toBe(expected.length);
        expect((await readAll(store.openRead('batches/e/output.jsonl'))).equals(expected)).toBe(true);
      });

      it('reads back in every byte range, across part boundaries', async () => {
        const store = await makeStore();
        const texts = ['abc\n', 'de\n', 'fghij\n', 'k\n'];
        const parts: BlobPart[] = [];
        for (const [i, text] of texts.entries()) {
          const key = `batches/r/segments/output-${i}.jsonl`;
          await put(store, key, `${text}torn`);
          parts.push({ key, bytes: text.length });
        }
        await store.compose('batches/r/output.jsonl', parts);
        const whole = texts.join('');
        for (let start = 0; start <= whole.length + 1; start++) {
          for (let end = start; end <= whole.length + 1; end++) {
            expect(await readText(store.openRead('batches/r/output.jsonl', { start, end })), `bytes ${start}-${end}`).toBe(whole.slice(start, end + 1));
          }
          expect(await readText(store.openRead('batches/r/output.jsonl', { start }))).toBe(whole.slice(start));
        }
        expect(await store.size('batches/r/output.jsonl')).toBe(whole.length);
      });

      it('delete removes the composed blob (and, composed by reference, its parts)', async () => {
        const store = await makeStore();
        await put(store, 'batches/g/segments/a.jsonl', 'a\n');
        await put(store, 'batches/g/segments/b.jsonl', 'b\n');
        const parts = [
          { key: 'batches/g/segments/a.jsonl', bytes: 2 },
          { key: 'batches/g/segments/b.jsonl', bytes: 2 },
        ];
        await store.compose('batches/g/output.jsonl', parts);
        await store.delete('batches/g/output.jsonl');
        expect(await store.size('batches/g/output.jsonl')).toBeNull();
        await expect(readText(store.openRead('batches/g/output.jsonl'))).rejects.toMatchObject({ code: 'ENOENT' });
        for (const p of parts) expect(await store.size(p.key)).toBe(store.composeByReference ? null : 2);
        await store.delete('batches/g/output.jsonl'); // already gone: fine
      });

      it('an upload replaces a composed blob', async () => {
        const store = await makeStore();
        await put(store, 'batches/h/segments/a.jsonl', 'composed\n');
        await store.compose('batches/h/output.jsonl', [{ key: 'batches/h/segments/a.jsonl', bytes: 9 }]);
        await put(store, 'batches/h/output.jsonl', 'uploaded\n');
        expect(await readText(store.openRead('batches/h/output.jsonl'))).toBe('uploaded\n');
        expect(await readText(store.openRead('batches/h/output.jsonl', { start: 2, end: 3 }))).toBe('lo');
        expect(await store.size('batches/h/output.jsonl')).toBe(9);
      });

      it('replaces an existing blob', async () => {
        const store = await makeStore();
        await put(store, 'batches/f/output.jsonl', 'stale\n');
        await put(store, 'batches/f/segments/a.jsonl', 'fresh\n');
        await store.compose('batches/f/output.jsonl', [{ key: 'batches/f/segments/a.jsonl', bytes: 6 }]);
        expect(await readText(store.openRead('batches/f/output.jsonl'))).toBe('fresh\n');
      });
    });

    describe('space and temp files', () => {
      it('freeBytes is a positive number or null', async () => {
        const store = await makeStore();
        const free = await store.freeBytes();
        if (free !== null) expect(free).toBeGreaterThan(0);
      });

      it('cleanTemp never touches committed blobs or running segments', async () => {
        const store = await makeStore();
        await put(store, 'files/kept.jsonl', 'data');
        const seg = store.openSegment('batches/g/segments/output-1.jsonl');
        seg.append('x');
        await seg.written();
        expect(await store.cleanTemp(0)).toBeGreaterThanOrEqual(0);
        expect(await store.size('files/kept.jsonl')).toBe(4);
        seg.append('y');
        expect(await seg.seal()).toEqual({ lines: 2, bytes: 4 });
        expect(await readText(store.openRead(seg.key))).toBe('x\ny\n');
      });
    });

    const makeBroken = opts.makeBrokenStore;
    describe.runIf(makeBroken !== undefined)('write errors', () => {
      it('a segment keeps its write error and throws it from every later call', async () => {
        const store = await makeBroken!();
        const seg = store.openSegment('batches/h/segments/output-1.jsonl');
        seg.append('a');
        // Local stores fail at the write (written()); S3 at the upload (seal()).
        const failure = store.durableAppend ? seg.written() : seg.written().then(() => seg.seal());
        const err = await failure.then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(Error);
        expect(() => seg.append('b')).toThrow((err as Error).message);
        await expect(seg.written()).rejects.toBe(err);
        await expect(seg.seal()).rejects.toBe(err);
        const discarded = await seg.discard().then(
          () => null,
          (e: unknown) => e,
        );
        expect(discarded).not.toBe(err); // discard cleans up (its own request may fail); it does not rethrow
      });

      it('an upload fails at commit, and abort still resolves', async () => {
        const store = await makeBroken!();
        const up = store.createUpload('files/x.jsonl');
        await pipeline(Readable.from([Buffer.from('data')]), up.stream).catch(() => {});
        await expect(up.commit()).rejects.toThrow();
        await expect(up.abort()).resolves.toBeUndefined();
      });

      it('compose rejects', async () => {
        const store = await makeBroken!();
        await expect(store.compose('batches/h/output.jsonl', [])).rejects.toThrow();
      });
    });
  });
}
