import { endianness } from 'node:os';

import { customIdIndexKey } from '../store/blob-keys.js';
import type { BlobStore } from '../store/blob-store.js';
import { putBlob, readRange } from './result-blobs.js';

/**
 * The custom_id index of a batch: which shard holds each request, so that one request's result is
 * found by reading one shard's lines (≤ BESH_SHARD_LINES) instead of the whole batch. Validation
 * already reads every line; it adds a 64-bit hash of each custom_id here and writes the index once,
 * before the batch goes in_progress (docs/results.md).
 *
 * Format (`batches/<id>/custom-ids.idx`), little-endian:
 *
 *   0   4  magic "BCI1"
 *   4   1  shard bits b (the low b bits of a key are the shard number)
 *   5   3  zero
 *   8   4  entries n
 *   12  4  request lines per shard
 *   16  8n keys, ascending: key = (hash64(custom_id) with its low b bits cleared) | shard
 *
 * So an entry is 8 bytes, the keys of one custom_id form one run of the sorted array, and a lookup
 * needs ~2 range reads (the hashes are uniform: interpolation search). Two ids share a run only if
 * their hashes agree on 64 − b bits (b = 8 for 200 shards: ~10⁻¹¹ per lookup on a 1M-line batch);
 * such a run names every shard involved and the shard scan tells them apart.
 */

const MAGIC = 0x31494342; // "BCI1" read little-endian
export const INDEX_HEADER_BYTES = 16;
const ENTRY_BYTES = 8;
/** Entries read per probe (4 KiB): one probe usually lands on the run, a second always does. */
const WINDOW = 512;
/** An index this small is read whole. */
const WHOLE_BYTES = 64 * 1024;

/** The index's hash of a custom_id: two 32-bit hashes over its UTF-16 units (FNV-1a and a murmur-style mix), each finalized by fmix32. */
export function customIdHash(s: string): { hi: number; lo: number } {
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return { hi: fmix32(a), lo: fmix32(b ^ Math.imul(a, 0x27d4eb2f)) };
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const shardBitsFor = (shards: number): number => (shards <= 1 ? 0 : Math.ceil(Math.log2(shards)));

/**
 * Collects the hash of each request line's custom_id in input order (8 bytes a line, allocated
 * once when the number of lines is known), then builds the sorted index.
 */
export class CustomIdIndexBuilder {
  #keys: BigUint64Array;
  #words: Uint32Array;
  #count = 0;
  readonly #max: number;

  /** `expected`: the input's line count when known; `max`: lines beyond it are not recorded (the batch is refused anyway). */
  constructor(expected: number | null, max: number) {
    this.#max = max;
    const cap = Math.max(16, Math.min(expected ?? 1024, max));
    this.#keys = new BigUint64Array(cap);
    this.#words = new Uint32Array(this.#keys.buffer);
  }

  /** Records the custom_id of request `i` (0-based, counting request lines only). */
  add(i: number, customId: string): void {
    if (i >= this.#max) return;
    if (i >= this.#keys.length) this.#grow(i + 1);
    const h = customIdHash(customId);
    this.#words[2 * i] = h.lo;
    this.#words[2 * i + 1] = h.hi;
    if (i >= this.#count) this.#count = i + 1;
  }

  /**
   * The index of `total` requests cut into shards of `linesPerShard`, as the blob's bytes; `ranks`
   * gives each request's place in the order the shards cut (when the lines were regrouped).
   */
  build(total: number, linesPerShard: number, ranks?: Uint32Array): Buffer {
    const n = Math.min(total, this.#count);
    const shards = Math.ceil(n / linesPerShard);
    const bits = shardBitsFor(shards);
    if (bits > 31) throw new Error(`too many shards for the custom_id index: ${shards}`);
    const w = this.#words;
    const clear = bits === 0 ? 0xffffffff : ~((1 << bits) - 1) >>> 0;
    for (let i = 0; i < n; i++) w[2 * i] = ((w[2 * i]! & clear) | Math.floor((ranks === undefined ? i : ranks[i]!) / linesPerShard)) >>> 0;
    const keys = this.#keys.subarray(0, n);
    keys.sort();
    const out = Buffer.allocUnsafe(INDEX_HEADER_BYTES + n * ENTRY_BYTES);
    out.writeUInt32LE(MAGIC, 0);
    out.writeUInt32LE(bits, 4);
    out.writeUInt32LE(n, 8);
    out.writeUInt32LE(linesPerShard, 12);
    const body = Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength);
    body.copy(out, INDEX_HEADER_BYTES);
    if (endianness() === 'BE') out.subarray(INDEX_HEADER_BYTES).swap64();
    return out;
  }

  #grow(need: number): void {
    let cap = this.#keys.length;
    while (cap < need) cap = Math.min(this.#max, Math.ceil(cap * 1.5));
    const next = new BigUint64Array(cap);
    next.set(this.#keys);
    this.#keys = next;
    this.#words = new Uint32Array(next.buffer);
  }
}

/** Writes the index (replacing any earlier one: a validation redone by another replica writes the same bytes). */
export async function writeCustomIdIndex(blobs: BlobStore, batchId: string, index: Buffer): Promise<void> {
  await putBlob(blobs, customIdIndexKey(batchId), index);
}

export interface IndexLookup {
  /** Shards that may hold the custom_id (usually one; none: it is not in the batch). */
  shards: number[];
  /** Bytes read from the index. */
  bytesRead: number;
}

/** The shards the index names for `customId`, or null when the batch has no index. */
export async function lookupCustomId(blobs: BlobStore, batchId: string, customId: string): Promise<IndexLookup | null> {
  const key = customIdIndexKey(batchId);
  const size = await blobs.size(key);
  if (size === null) return null;
  let bytesRead = 0;
  const read = async (start: number, end: number): Promise<Buffer> => {
    const buf = await readRange(blobs, key, start, end);
    bytesRead += buf.length;
    if (buf.length !== end - start) throw new Error(`custom_id index of ${batchId} is shorter than expected`);
    return buf;
  };
  const whole = size <= WHOLE_BYTES ? await read(0, size) : null;
  const header = whole ?? (await read(0, INDEX_HEADER_BYTES));
  if (header.length < INDEX_HEADER_BYTES || header.readUInt32LE(0) !== MAGIC) throw new Error(`custom_id index of ${batchId} is not an index`);
  const bits = header.readUInt32LE(4);
  const n = header.readUInt32LE(8);
  if (size !== INDEX_HEADER_BYTES + n * ENTRY_BYTES) throw new Error(`custom_id index of ${batchId} has a wrong size`);

  const h = customIdHash(customId);
  const mask = bits === 0 ? 0n : (1n << BigInt(bits)) - 1n;
  const target = ((BigInt(h.hi) << 32n) | BigInt(h.lo)) & ~mask & 0xffffffffffffffffn;
  const last = target | mask;
  const entries = async (from: number, to: number): Promise<BigUint64Array> => {
    const buf = whole ? whole.subarray(INDEX_HEADER_BYTES + from * ENTRY_BYTES, INDEX_HEADER_BYTES + to * ENTRY_BYTES) : await read(INDEX_HEADER_BYTES + from * ENTRY_BYTES, INDEX_HEADER_BYTES + to * ENTRY_BYTES);
    const out = new BigUint64Array(to - from);
    for (let i = 0; i < out.length; i++) out[i] = buf.readBigUInt64LE(i * ENTRY_BYTES);
    return out;
  };

  // The first entry ≥ target: interpolation between the bounds while the range is wide, then one read.
  let lo = 0;
  let hi = n;
  let loKey = 0;
  let hiKey = 2 ** 64;
  let probes = 0;
  let found = -1;
  let window: { from: number; keys: BigUint64Array } | null = null;
  const t = Number(target);
  while (found < 0) {
    if (hi - lo <= WINDOW) {
      const keys = await entries(lo, hi);
      let i = 0;
      while (i < keys.length && keys[i]! < target) i++;
      found = lo + i;
      window = { from: lo, keys };
      break;
    }
    // After a few interpolation probes fall back to halving, so a skewed index cannot cost n reads.
    const est = probes < 4 && hiKey > loKey ? lo + ((t - loKey) / (hiKey - loKey)) * (hi - lo) : (lo + hi) / 2;
    probes++;
    const from = Math.min(Math.max(lo, Math.floor(est) - WINDOW / 2), hi - WINDOW);
    const keys = await entries(from, from + WINDOW);
    if (keys[0]! >= target && from > lo) {
      hi = from + 1;
      hiKey = Number(keys[0]!);
      continue;
    }
    if (keys[WINDOW - 1]! < target) {
      lo = from + WINDOW;
      loKey = Number(keys[WINDOW - 1]!);
      continue;
    }
    let i = 0;
    while (keys[i]! < target) i++;
    found = from + i;
    window = { from, keys };
  }

  const shards = new Set<number>();
  const shardMask = bits === 0 ? 0 : (1 << bits) - 1;
  for (let i = found; i < n; i++) {
    if (window === null || i >= window.from + window.keys.length) window = { from: i, keys: await entries(i, Math.min(n, i + WINDOW)) };
    const k = window.keys[i - window.from]!;
    if (k > last) break;
    shards.add(Number(k & 0xffffffffn) & shardMask);
  }
  return { shards: [...shards].sort((x, y) => x - y), bytesRead };
}
