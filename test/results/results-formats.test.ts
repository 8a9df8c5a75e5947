/**
 * The three formats behind results while a batch runs, on their own: the custom_id index (built,
 * written to a local blob store, looked up with range reads), the cursor (round trips, refusals)
 * and the result map.
 */
import { describe, expect, it } from 'vitest';

import { cursorPositions, decodeCursor, emptyCursor, encodeCursor } from '../../src/api/results-cursor.js';
import { CustomIdIndexBuilder, INDEX_HEADER_BYTES, lookupCustomId, writeCustomIdIndex } from '../../src/engine/result-index.js';
import { ResultMapBuilder, shardRange } from '../../src/engine/result-map.js';
import { LocalBlobStore } from '../../src/store/local-blob-store.js';
import { tempDir } from '../helpers/besh-process.js';

/** A deterministic PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('custom_id index', () => {
  it('names the shard of every id and no shard for ids not in it, reading a few KiB of a large index', async () => {
    const dir = tempDir('besh-index-');
    try {
      const blobs = new LocalBlobStore(dir.path);
      const rand = prng(7);
      const n = 200_000;
      const perShard = 1000;
      const ids = Array.from({ length: n }, (_, i) => `${i % 3 === 0 ? 'req' : 'x'}-${i}-${Math.floor(rand() * 1e9).toString(36)}`);
      const b = new CustomIdIndexBuilder(n, 1_000_000);
      ids.forEach((id, i) => b.add(i, id));
      const index = b.build(n, perShard);
      expect(index.length).toBe(INDEX_HEADER_BYTES + 8 * n);
      await writeCustomIdIndex(blobs, 'batch_a', index);
      let most = 0;
      for (let k = 0; k < 2000; k++) {
        const i = Math.floor(rand() * n);
        const r = (await lookupCustomId(blobs, 'batch_a', ids[i]!))!;
        expect(r.shards).toEqual([Math.floor(i / perShard)]);
        most = Math.max(most, r.bytesRead);
      }
      for (const i of [0, n - 1]) expect((await lookupCustomId(blobs, 'batch_a', ids[i]!))!.shards).toEqual([Math.floor(i / perShard)]);
      for (let k = 0; k < 2000; k++) expect((await lookupCustomId(blobs, 'batch_a', `absent-${k}`))!.shards).toEqual([]);
      // Header + at most a few 4 KiB windows of a 1.6 MB index.
      expect(most).toBeLessThanOrEqual(INDEX_HEADER_BYTES + 4 * 4096);
      expect(await lookupCustomId(blobs, 'batch_none', 'x')).toBeNull();
    } finally {
      dir.remove();
    }
  });

  it('small indexes are read whole; one shard, one line and no line work too', async () => {
    const dir = tempDir('besh-index-');
    try {
      const blobs = new LocalBlobStore(dir.path);
      for (const [n, perShard] of [
        [0, 10],
        [1, 10],
        [10, 10],
        [3000, 7],
        [5000, 1],
      ] as const) {
        // Started smaller than needed: the builder grows.
        const b = new CustomIdIndexBuilder(null, 1_000_000);
        for (let i = 0; i < n; i++) b.add(i, `id-${i}`);
        await writeCustomIdIndex(blobs, 'batch_s', b.build(n, perShard));
        for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 50))) {
          const r = (await lookupCustomId(blobs, 'batch_s', `id-${i}`))!;
          expect(r.shards, `${n}/${perShard} id-${i}`).toEqual([Math.floor(i / perShard)]);
        }
        expect((await lookupCustomId(blobs, 'batch_s', `id-${n}`))!.shards).toEqual([]);
      }
    } finally {
      dir.remove();
    }
  });
});

describe('results cursor', () => {
  it('round-trips, is bound to its batch, and refuses any altered byte', () => {
    const rand = prng(11);
    for (let k = 0; k < 200; k++) {
      const c = emptyCursor();
      const shards = 1 + Math.floor(rand() * 500);
      for (const kind of ['output', 'error'] as const) {
        for (let s = 0; s < shards; s++) {
          const x = rand();
          if (x < 0.4) c[kind].closed.add(s);
          else if (x < 0.6) c[kind].offsets.set(s, 1 + Math.floor(rand() * 2 ** 40));
        }
      }
      const token = encodeCursor('batch_k', c);
      expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(cursorPositions(decodeCursor('batch_k', token), shards)).toEqual(c);
      expect(() => decodeCursor('batch_other', token)).toThrow(/not a cursor of this batch/);
      const raw = Buffer.from(token, 'base64url');
      const at = Math.floor(rand() * raw.length);
      raw[at] = raw[at]! ^ (1 << Math.floor(rand() * 8));
      expect(() => decodeCursor('batch_k', raw.toString('base64url'))).toThrow(/cursor/);
      if (c.output.closed.size > 0) expect(() => cursorPositions(decodeCursor('batch_k', token), Math.max(...c.output.closed))).toThrow(/does not have/);
    }
    // Small: a finished 200-shard batch's cursor, and the start.
    const end = emptyCursor();
    for (let s = 0; s < 200; s++) {
      end.output.closed.add(s);
      end.error.closed.add(s);
    }
    expect(encodeCursor('batch_k', end)).toHaveLength(23);
    expect(encodeCursor('batch_k', emptyCursor())).toHaveLength(15);
  });
});

describe('result map', () => {
  it('gives each shard its contiguous range of the composed file', () => {
    const m = new ResultMapBuilder();
    m.add('output', 0, 10);
    m.add('output', 0, 5);
    m.add('output', 0, 0);
    m.add('output', 2, 7);
    m.add('error', 1, 3);
    expect(() => m.add('output', 1, 1)).toThrow(/shard 1 after shard 2/);
    const map = m.build(4);
    expect(map.output).toEqual({ bytes: 22, ranges: [[0, 0, 15], [2, 15, 22]] });
    expect(shardRange(map, 'output', 2)).toEqual([15, 22]);
    expect(shardRange(map, 'output', 1)).toEqual([0, 0]);
    expect(shardRange(map, 'error', 1)).toEqual([0, 3]);
    expect(shardRange(map, 'error', 3)).toEqual([0, 0]);
  });
});
