import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { scanResultLines } from '../../src/jsonl/result-file.js';
import { errorLine, successLine } from '../../src/jsonl/result-line.js';
import { chunksOf, splitAt, tempDir } from './helpers.js';

const ok = (i: number, custom = `c${i}`): string => successLine(`batch_req_${i}`, custom, 200, `req_${i}`, `{"n":${i},"usage":{"total_tokens":${i}}}`);

describe('scanResultLines', () => {
  it('an empty source', async () => {
    expect(await scanResultLines(chunksOf())).toEqual({ lines: 0, completeBytes: 0, customIds: new Set(), tornBytes: 0 });
  });

  it('collects custom ids (also escaped, long and foreign-shaped) and hands lines to onLine', async () => {
    const long = 'L'.repeat(5000);
    const lines = [ok(1), ok(2, 'quote"back\\slash'), ok(3, long), ok(4, 'ünï€'), errorLine('batch_req_5', 'c5', 'batch_expired', 'late'), '{"custom_id":"other-shape","x":1}\n'];
    const seen: string[] = [];
    const s = await scanResultLines(chunksOf(lines.join('')), (t) => seen.push(t));
    expect(s).toMatchObject({ lines: 6, completeBytes: Buffer.byteLength(lines.join('')), tornBytes: 0 });
    expect(s.customIds).toEqual(new Set(['c1', 'quote"back\\slash', long, 'ünï€', 'c5', 'other-shape']));
    expect(seen).toEqual(lines.map((l) => l.slice(0, -1)));
  });

  it('ignores a torn last line: counted in tornBytes, never a line', async () => {
    const torn = '{"id":"batch_req_3","custom_id":"c3","response":{"status_co';
    const seen: string[] = [];
    const s = await scanResultLines(chunksOf(ok(1) + ok(2), torn), (t) => seen.push(t));
    expect(s).toMatchObject({ lines: 2, completeBytes: Buffer.byteLength(ok(1) + ok(2)), tornBytes: torn.length });
    expect(s.customIds).toEqual(new Set(['c1', 'c2']));
    expect(seen).toHaveLength(2);
  });

  it('a source that is only a torn line has no lines', async () => {
    expect(await scanResultLines(chunksOf('{"id"'))).toEqual({ lines: 0, completeBytes: 0, customIds: new Set(), tornBytes: 5 });
  });

  it('gives the same result however the bytes are chunked', async () => {
    const text = Buffer.from(ok(1) + ok(2, 'ü-€') + ok(3) + '{"id":"batch_req_4"');
    const whole = await scanResultLines(chunksOf(text));
    for (const cuts of [[1], [10, 11, 12], [ok(1).length], [ok(1).length - 1, ok(1).length + 1], [text.length - 3]]) {
      expect(await scanResultLines(chunksOf(...splitAt(text, ...cuts)))).toEqual(whole);
    }
    expect(whole).toMatchObject({ lines: 3, tornBytes: '{"id":"batch_req_4"'.length });
  });

  it('reads a file stream and leaves the file untouched', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const p = join(dir, 'seg.jsonl');
      const content = ok(1) + ok(2) + '{"id":"torn';
      await writeFile(p, content);
      const s = await scanResultLines(createReadStream(p, { highWaterMark: 7 }));
      expect(s).toMatchObject({ lines: 2, tornBytes: '{"id":"torn'.length });
      expect(await readFile(p, 'utf8')).toBe(content);
    } finally {
      await cleanup();
    }
  });
});
