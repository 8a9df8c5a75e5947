import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { writeReorderedCopy } from '../../src/engine/prefix-copy.js';
import { PrefixPlan } from '../../src/engine/prefix-plan.js';
import { LocalBlobStore } from '../../src/store/local-blob-store.js';

const dir = mkdtempSync(join(tmpdir(), 'besh-prefix-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const planOf = (keys: Array<string | null>, len = 10): PrefixPlan => {
  const p = new PrefixPlan(4);
  for (const k of keys) p.add(len, k);
  return p;
};

describe('PrefixPlan', () => {
  it('places lines group by group, groups in order of first appearance, lines in order within a group', () => {
    const p = planOf(['a', 'b', 'a', null, 'b', 'a'], 1);
    const { destinations, ranks, bytes } = p.order();
    // groups: a (lines 0, 2, 5), b (1, 4), null (3)
    expect([...ranks]).toEqual([0, 3, 1, 5, 4, 2]);
    expect([...destinations]).toEqual([0, 3, 1, 5, 4, 2]);
    expect(bytes).toBe(6);
  });

  it('is worth it only when lines share prefixes and are not already together', () => {
    const shuffled = Array.from({ length: 100 }, (_, i) => `k${(i * 7) % 5}`);
    expect(planOf(shuffled).worthIt()).toBe(true);
    expect(planOf([...shuffled].sort()).worthIt()).toBe(false); // already grouped
    expect(planOf(Array.from({ length: 100 }, (_, i) => `u${i}`)).worthIt()).toBe(false); // nothing shared
    expect(planOf(Array.from({ length: 100 }, () => null)).worthIt()).toBe(false);
    expect(planOf([]).worthIt()).toBe(false);
  });

  it('gives up (and frees its memory) past its cap of distinct prefixes', () => {
    const p = new PrefixPlan(4, 10);
    for (let i = 0; i < 50; i++) p.add(10, `k${i % 20}`);
    expect(p.worthIt()).toBe(false);
  });

  it('gives up early on an input whose first lines share almost nothing, and keeps going on one that shares', () => {
    const distinct = new PrefixPlan(100, 200_000, 1000);
    for (let i = 0; i < 999; i++) distinct.add(10, i % 50 === 0 ? 'shared' : `u${i}`);
    expect(distinct.tracking).toBe(true);
    distinct.add(10, 'u-last');
    expect(distinct.tracking).toBe(false);
    expect(distinct.worthIt()).toBe(false);
    const sharing = new PrefixPlan(100, 200_000, 1000);
    for (let i = 0; i < 3000; i++) sharing.add(10, `k${(i * 7) % 500}`);
    expect(sharing.tracking).toBe(true);
    expect(sharing.worthIt()).toBe(true);
  });

  it('grows past its first estimate', () => {
    const p = planOf(Array.from({ length: 1000 }, (_, i) => `k${i % 3}`), 3);
    expect(p.lines).toBe(1000);
    expect(p.order().bytes).toBe(3000);
  });
});

describe('writeReorderedCopy', () => {
  it('writes the lines in plan order over several windows, whole lines only, nothing lost', async () => {
    const blobs = new LocalBlobStore(dir);
    const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ custom_id: `c${i}`, pad: 'x'.repeat(i % 37), g: i % 6 }));
    const up = blobs.createUpload('files/in.jsonl');
    // CRLF, a BOM and a missing final newline: the copy has plain '\n' lines.
    up.stream.end(`\uFEFF${lines.join('\r\n')}`);
    await up.commit();
    const plan = new PrefixPlan(8);
    for (const l of lines) plan.add(Buffer.byteLength(l) + 1, `g${(JSON.parse(l) as { g: number }).g}`);
    const order = plan.order();
    await writeReorderedCopy(blobs, 'files/in.jsonl', 'batches/b/input.grouped.jsonl', order, { maxLineBytes: 1024, signal: new AbortController().signal, windowBytes: 512 });
    const chunks: Buffer[] = [];
    for await (const c of blobs.openRead('batches/b/input.grouped.jsonl')) chunks.push(c as Buffer);
    const copy = Buffer.concat(chunks).toString('utf8');
    expect(Buffer.byteLength(copy)).toBe(order.bytes);
    const out = copy.split('\n').slice(0, -1);
    expect(out).toHaveLength(200);
    const expected = [...lines].map((l, i) => ({ l, r: order.ranks[i]! })).sort((a, b) => a.r - b.r).map((x) => x.l);
    expect(out).toEqual(expected);
    // grouped: 6 runs of g
    const gs = out.map((l) => (JSON.parse(l) as { g: number }).g);
    expect(gs.filter((g, i) => i === 0 || g !== gs[i - 1])).toHaveLength(6);
  });
});
