import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { JsonlError } from '../../src/jsonl/errors.js';
import { decodeInput } from '../../src/jsonl/open-input.js';
import { collect, splitAt } from './helpers.js';

const decode = async (chunks: Buffer[], max = 1 << 30): Promise<Buffer> =>
  Buffer.concat(await collect<Buffer>(decodeInput(Readable.from(chunks, { objectMode: false }), { maxDecompressedBytes: max })));

const text = Buffer.from('{"custom_id":"a"}\n{"custom_id":"b"}\n'.repeat(1000));

describe('decodeInput', () => {
  it('passes plain bytes through unchanged, whatever the chunking', async () => {
    expect((await decode([text])).equals(text)).toBe(true);
    expect((await decode(splitAt(text, 1, 2, 3))).equals(text)).toBe(true);
    const bin = randomBytes(5000);
    bin[0] = 0x1f;
    bin[1] = 0x8a;
    expect((await decode([bin])).equals(bin)).toBe(true);
  });

  it('passes an empty and a one-byte (0x1f) input through', async () => {
    expect((await decode([])).length).toBe(0);
    expect((await decode([Buffer.from([0x1f])])).equals(Buffer.from([0x1f]))).toBe(true);
  });

  it('gunzips by magic bytes, also when the magic is split across chunks', async () => {
    const gz = gzipSync(text);
    expect((await decode([gz])).equals(text)).toBe(true);
    expect((await decode(splitAt(gz, 1, 2, 100))).equals(text)).toBe(true);
  });

  it('gunzips multi-member gzip', async () => {
    const a = Buffer.from('{"x":1}\n');
    const b = Buffer.from('{"y":2}\n');
    expect((await decode([Buffer.concat([gzipSync(a), gzipSync(b)])])).toString()).toBe('{"x":1}\n{"y":2}\n');
  });

  it('fails a truncated gzip with invalid_gzip', async () => {
    const gz = gzipSync(text);
    const err: unknown = await decode([gz.subarray(0, gz.length - 10)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JsonlError);
    expect(err).toMatchObject({ code: 'invalid_gzip', line: null });
  });

  it('fails a corrupt gzip with invalid_gzip', async () => {
    const gz = Buffer.from(gzipSync(text));
    gz.fill(0x55, 10, 40);
    await expect(decode([gz])).rejects.toMatchObject({ code: 'invalid_gzip' });
  });

  it('stops a gzip bomb at the cap and destroys the source', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 1 }); // ~300 KiB compressed
    let pulled = 0;
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < bomb.length; i += 1024) {
          pulled++;
          yield bomb.subarray(i, i + 1024);
        }
      })(),
      { objectMode: false },
    );
    const out = decodeInput(source, { maxDecompressedBytes: 1024 * 1024 });
    let got = 0;
    const err: unknown = await (async () => {
      try {
        for await (const c of out as AsyncIterable<Buffer>) got += c.length;
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toMatchObject({ code: 'decompressed_too_large' });
    expect(got).toBeLessThanOrEqual(1024 * 1024);
    expect(pulled).toBeLessThan(Math.ceil(bomb.length / 1024));
    await new Promise((r) => setImmediate(r));
    expect(source.destroyed).toBe(true);
  });

  it('allows output of exactly the cap', async () => {
    const data = Buffer.alloc(4096, 0x61);
    expect((await decode([gzipSync(data)], 4096)).length).toBe(4096);
    await expect(decode([gzipSync(data)], 4095)).rejects.toMatchObject({ code: 'decompressed_too_large' });
  });

  it("passes the source's own errors through", async () => {
    const gz = gzipSync(text);
    const failing = (first: Buffer): Readable =>
      Readable.from(
        (async function* () {
          await Promise.resolve();
          yield first;
          throw new Error('disk gone');
        })(),
        { objectMode: false },
      );
    await expect(collect(decodeInput(failing(gz.subarray(0, 50)), { maxDecompressedBytes: 1e9 }))).rejects.toThrow('disk gone');
    await expect(collect(decodeInput(failing(text), { maxDecompressedBytes: 1e9 }))).rejects.toThrow('disk gone');
  });

  it('destroys a stalled source when the output is destroyed', async () => {
    for (const first of [text.subarray(0, 100), gzipSync(text).subarray(0, 100)]) {
      const source = new Readable({ read() {} });
      source.push(first);
      const out = decodeInput(source, { maxDecompressedBytes: 1e9 });
      out.resume();
      await new Promise((r) => setTimeout(r, 20));
      out.destroy();
      await new Promise((r) => setTimeout(r, 20));
      expect(source.destroyed).toBe(true);
    }
  });
});
