import { describe, expect, it } from 'vitest';

import { JsonlError } from '../../src/jsonl/errors.js';
import { type RawLine, readLineBatches, readLines } from '../../src/jsonl/line-splitter.js';
import { chunksOf, collect, splitAt } from './helpers.js';

/** The obvious, slow split the fast one must agree with. */
function reference(buf: Buffer): RawLine[] {
  const bomLen = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  const out: RawLine[] = [];
  let lineStart = 0;
  let contentStart = bomLen;
  for (let i = bomLen; i <= buf.length; i++) {
    const atEnd = i === buf.length;
    if (!atEnd && buf[i] !== 0x0a) continue;
    if (atEnd && i === contentStart) break; // empty final segment
    let end = i;
    if (end > contentStart && buf[end - 1] === 0x0d) end--;
    const byteLength = (atEnd ? i : i + 1) - lineStart;
    out.push({ line: out.length + 1, text: buf.toString('utf8', contentStart, end), byteOffset: lineStart, byteLength });
    lineStart = contentStart = i + 1;
  }
  return out;
}

const lines = (buf: Buffer, ...cuts: number[]): Promise<RawLine[]> =>
  collect(readLines(chunksOf(...splitAt(buf, ...cuts)), { maxLineBytes: 1000 }));

const SAMPLES: Record<string, string | Buffer> = {
  plain: '{"a":1}\n{"b":2}\n',
  'no final newline': '{"a":1}\n{"b":2}',
  crlf: '{"a":1}\r\n{"b":2}\r\n\r\n',
  bom: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}\n{"b":"ü"}\n')]),
  'bom only': Buffer.from([0xef, 0xbb, 0xbf]),
  'bom newline': Buffer.from([0xef, 0xbb, 0xbf, 0x0a]),
  'partial bom': Buffer.from([0xef, 0xbb, 0x41, 0x0a]),
  blanks: '\n\n  \n{"x":"€𝄞"}\n\t\n\n',
  multibyte: 'ä€𝄞\n日本語\r\nç',
  'lone cr': 'a\r\r\nb\rc\n\r',
  empty: '',
  'just newline': '\n',
};

describe('readLines', () => {
  for (const [name, sample] of Object.entries(SAMPLES)) {
    it(`matches the reference split at every chunk boundary: ${name}`, async () => {
      const buf = typeof sample === 'string' ? Buffer.from(sample) : sample;
      const want = reference(buf);
      expect(await lines(buf)).toEqual(want);
      for (let i = 0; i <= buf.length; i++) {
        expect(await lines(buf, i), `cut at ${i}`).toEqual(want);
        for (let j = i; j <= buf.length; j++) expect(await lines(buf, i, j), `cuts at ${i},${j}`).toEqual(want);
      }
      // One byte per chunk.
      const bytes = Array.from({ length: buf.length }, (_, k) => k + 1).slice(0, -1);
      expect(await lines(buf, ...bytes)).toEqual(want);
    });
  }

  it('gives the expected lines, offsets and lengths', async () => {
    const buf = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}\r\n\n  \nlast')]);
    expect(await lines(buf)).toEqual([
      { line: 1, text: '{"a":1}', byteOffset: 0, byteLength: 12 },
      { line: 2, text: '', byteOffset: 12, byteLength: 1 },
      { line: 3, text: '  ', byteOffset: 13, byteLength: 3 },
      { line: 4, text: 'last', byteOffset: 16, byteLength: 4 },
    ]);
  });

  it('byte lengths add up to the source size', async () => {
    const buf = Buffer.from('a\nbb\r\n\nccc');
    const got = await lines(buf, 3, 5);
    expect(got.reduce((n, l) => n + l.byteLength, 0)).toBe(buf.length);
  });

  it('decodes a multi-byte character split across chunks', async () => {
    const buf = Buffer.from('{"t":"𝄞"}\n');
    const at = buf.indexOf(0xf0);
    for (let k = at + 1; k < at + 4; k++) expect((await lines(buf, k))[0]!.text).toBe('{"t":"𝄞"}');
  });

  it('accepts a line of exactly maxLineBytes, also with CRLF', async () => {
    const l = 'x'.repeat(10);
    for (const text of [`${l}\n`, `${l}\r\n`, l, `${l}\r`]) {
      const got = await collect(readLines(chunksOf(...splitAt(Buffer.from(text), 3, 7)), { maxLineBytes: 10 }));
      expect(got.map((g) => g.text)).toEqual([l]);
    }
  });

  it('throws line_too_long with the line number, after yielding the lines before it', async () => {
    const seen: string[] = [];
    const err = await (async () => {
      try {
        for await (const l of readLines(chunksOf('ok\nfine\n', 'x'.repeat(11), '\n'), { maxLineBytes: 10 })) seen.push(l.text);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(JsonlError);
    expect(err).toMatchObject({ code: 'line_too_long', line: 3 });
    expect(seen).toEqual(['ok', 'fine']);
  });

  it('fails a long line before its end arrives (bounded buffering)', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      yield Buffer.from('{"a":1}\n');
      for (;;) {
        pulled++;
        await Promise.resolve();
        yield Buffer.alloc(1024, 0x61);
      }
    }
    await expect(collect(readLines(endless(), { maxLineBytes: 10_000 }))).rejects.toMatchObject({ code: 'line_too_long', line: 2 });
    expect(pulled).toBeLessThanOrEqual(11);
  });

  it('fails a too long line inside one chunk and a too long final line', async () => {
    await expect(lines(Buffer.from(`a\n${'y'.repeat(1001)}\nb\n`))).rejects.toMatchObject({ code: 'line_too_long', line: 2 });
    await expect(lines(Buffer.from(`a\n${'y'.repeat(1001)}`))).rejects.toMatchObject({ code: 'line_too_long', line: 2 });
  });

  it('readLineBatches yields one array per chunk', async () => {
    const batches = await collect(readLineBatches(chunksOf('a\nb\nc', '\nd\n'), { maxLineBytes: 100 }));
    expect(batches.map((b) => b.map((l) => l.text))).toEqual([['a', 'b'], ['c', 'd']]);
  });
});
