import { existsSync, statSync } from 'node:fs';
import { appendFile, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ResultWriter, scanResultFile } from '../../src/jsonl/result-file.js';
import { errorLine, successLine } from '../../src/jsonl/result-line.js';
import { tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;
const fresh = (): string => join(dir, `f${n++}.jsonl`);
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(() => cleanup());

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);
const ok = (i: number, custom = `c${i}`): string => successLine(`batch_req_${i}`, custom, 200, `req_${i}`, `{"n":${i},"usage":{"total_tokens":${i}}}`);

describe('ResultWriter', () => {
  it('creates the file only with the first line', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    await w.close();
    expect(await exists(p)).toBe(false);

    const w2 = await ResultWriter.open(p);
    w2.append(ok(1));
    expect(existsSync(p)).toBe(false); // buffered until the end of this turn
    await w2.written();
    expect(await readFile(p, 'utf8')).toBe(ok(1));
    await w2.close();
  });

  it('writes the lines of one turn together, in order, and written() waits for them', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    for (let i = 0; i < 200; i++) {
      w.append(ok(i));
      if (i % 50 === 49) {
        const before = existsSync(p) ? statSync(p).size : 0;
        await w.written();
        expect((await stat(p)).size).toBe(w.bytes);
        expect(before).toBeLessThan(w.bytes);
      }
    }
    await w.written(); // nothing pending: resolves at once
    await w.close();
    const text = await readFile(p, 'utf8');
    expect(text.split('\n').slice(0, -1).map((l) => (JSON.parse(l) as { custom_id: string }).custom_id)).toEqual(
      Array.from({ length: 200 }, (_, i) => `c${i}`),
    );
    expect(w.lines).toBe(200);
    expect(w.bytes).toBe(Buffer.byteLength(text));
  });

  it('adds a missing newline and counts multi-byte bytes', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    w.append('{"custom_id":"ü"}');
    await w.close();
    expect(await readFile(p, 'utf8')).toBe('{"custom_id":"ü"}\n');
    expect(w.bytes).toBe(19);
    expect(() => w.append('x')).toThrow(/closed/);
  });

  it('appends after an existing file across reopen, counting its lines', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    w.append(ok(1));
    w.append(ok(2));
    await w.close();
    const w2 = await ResultWriter.open(p);
    expect(w2.lines).toBe(2);
    expect(w2.bytes).toBe((await stat(p)).size);
    w2.append(errorLine('batch_req_3', 'c3', 'batch_expired', 'late'));
    await w2.close();
    expect(w2.lines).toBe(3);
    expect((await readFile(p, 'utf8')).split('\n')).toHaveLength(4);
    const scan = await scanResultFile(p);
    expect([...scan.customIds]).toEqual(['c1', 'c2', 'c3']);
    const w3 = await ResultWriter.open(p, scan);
    expect(w3.lines).toBe(3);
    await w3.close();
  });

  it('open() without a scan cuts a torn tail before appending', async () => {
    const p = fresh();
    await writeFile(p, `${ok(1)}{"id":"batch_req_2","cus`);
    const w = await ResultWriter.open(p);
    w.append(ok(3));
    await w.close();
    expect(await readFile(p, 'utf8')).toBe(ok(1) + ok(3));
  });

  it('close() can be called twice and refuses later appends', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    w.append(ok(1));
    await w.close();
    await w.close();
    expect(() => w.append(ok(2))).toThrow(/closed/);
    expect(await readFile(p, 'utf8')).toBe(ok(1));
  });

  it('writes a large line whole', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    const big = successLine('i', 'c', 200, null, JSON.stringify({ pad: 'x'.repeat(3_000_000) }));
    for (let i = 0; i < 3; i++) w.append(big);
    await w.close();
    expect((await stat(p)).size).toBe(3 * Buffer.byteLength(big));
  });

  it('reports write errors on written() and later calls', async () => {
    const w = await ResultWriter.open(join(dir, 'no-such-dir', 'x.jsonl'));
    w.append(ok(1));
    await expect(w.written()).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => w.append(ok(2))).toThrow();
    await expect(w.close()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('scanResultFile', () => {
  it('missing file', async () => {
    const s = await scanResultFile(join(dir, 'missing.jsonl'));
    expect(s).toEqual({ exists: false, lines: 0, bytes: 0, customIds: new Set(), truncatedBytes: 0 });
  });

  it('collects custom ids (also escaped, long and foreign-shaped) and hands lines to onLine', async () => {
    const p = fresh();
    const long = 'L'.repeat(5000);
    const lines = [ok(1), ok(2, 'quote"back\\slash'), ok(3, long), ok(4, 'ünï€'), '{"custom_id":"other-shape","x":1}\n'];
    await writeFile(p, lines.join(''));
    const seen: string[] = [];
    const s = await scanResultFile(p, (t) => seen.push(t));
    expect(s).toMatchObject({ exists: true, lines: 5, bytes: Buffer.byteLength(lines.join('')), truncatedBytes: 0 });
    expect(s.customIds).toEqual(new Set(['c1', 'quote"back\\slash', long, 'ünï€', 'other-shape']));
    expect(seen).toEqual(lines.map((l) => l.slice(0, -1)));
  });

  it('truncates a torn last line', async () => {
    const p = fresh();
    const torn = '{"id":"batch_req_3","custom_id":"c3","response":{"status_co';
    await writeFile(p, ok(1) + ok(2));
    await appendFile(p, torn);
    const seen: string[] = [];
    const s = await scanResultFile(p, (t) => seen.push(t));
    expect(s.truncatedBytes).toBe(torn.length);
    expect(s.lines).toBe(2);
    expect(s.customIds).toEqual(new Set(['c1', 'c2']));
    expect(seen).toHaveLength(2);
    expect(await readFile(p, 'utf8')).toBe(ok(1) + ok(2));
    expect(s.bytes).toBe((await stat(p)).size);
  });

  it('truncates a file that is only a torn line to 0 bytes', async () => {
    const p = fresh();
    await writeFile(p, '{"id"');
    const s = await scanResultFile(p);
    expect(s).toMatchObject({ exists: true, lines: 0, bytes: 0, truncatedBytes: 5 });
    const fh = await open(p, 'r');
    expect((await fh.stat()).size).toBe(0);
    await fh.close();
  });

  it('an empty file is fine', async () => {
    const p = fresh();
    await writeFile(p, '');
    expect(await scanResultFile(p)).toMatchObject({ exists: true, lines: 0, bytes: 0, truncatedBytes: 0 });
  });
});
