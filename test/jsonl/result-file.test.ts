import { appendFile, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

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
    await w.flush();
    expect(await exists(p)).toBe(false);
    await w.close();
    expect(await exists(p)).toBe(false);

    const w2 = await ResultWriter.open(p);
    w2.append(ok(1));
    expect(await exists(p)).toBe(false); // only buffered
    await w2.flush();
    expect(await readFile(p, 'utf8')).toBe(ok(1));
    await w2.close();
  });

  it('groups appends of one tick into one write, one write at a time', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    const writes: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    w.append(ok(0));
    await w.flush(); // file handle now open
    const fh = (w as unknown as { fh: { write: (...a: unknown[]) => Promise<{ bytesWritten: number }> } }).fh;
    const real = fh.write.bind(fh);
    fh.write = async (...a: unknown[]) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      writes.push(a[2] as number);
      await new Promise((r) => setTimeout(r, 5));
      const res = await real(...a);
      inFlight--;
      return res;
    };
    for (let i = 1; i <= 100; i++) w.append(ok(i));
    await new Promise((r) => setImmediate(r));
    for (let i = 101; i <= 200; i++) w.append(ok(i)); // arrive while the first group is being written
    await w.close();
    expect(writes).toHaveLength(2);
    expect(maxInFlight).toBe(1);
    const text = await readFile(p, 'utf8');
    expect(text.split('\n').slice(0, -1).map((l) => (JSON.parse(l) as { custom_id: string }).custom_id)).toEqual(
      Array.from({ length: 201 }, (_, i) => `c${i}`),
    );
    expect(w.lines).toBe(201);
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

  it('close() fsyncs', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    w.append(ok(1));
    await w.flush();
    const fh = (w as unknown as { fh: { sync: () => Promise<void> } }).fh;
    const sync = vi.spyOn(fh, 'sync');
    await w.close();
    expect(sync).toHaveBeenCalledTimes(1);
  });

  it('exposes needsDrain past ~1 MiB and drain() waits for it', async () => {
    const p = fresh();
    const w = await ResultWriter.open(p);
    const big = successLine('i', 'c', 200, null, JSON.stringify({ pad: 'x'.repeat(100_000) }));
    for (let i = 0; i < 20; i++) w.append(big);
    expect(w.needsDrain).toBe(true);
    await w.drain();
    expect(w.needsDrain).toBe(false);
    await w.close();
    expect((await stat(p)).size).toBe(20 * Buffer.byteLength(big));
  });

  it('reports write errors on flush and later appends', async () => {
    const w = await ResultWriter.open(join(dir, 'no-such-dir', 'x.jsonl'));
    w.append(ok(1));
    await expect(w.flush()).rejects.toMatchObject({ code: 'ENOENT' });
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
