import { type ResultKind, resultMapKey } from '../store/blob-keys.js';
import type { BlobStore } from '../store/blob-store.js';
import { putBlob, readWhole } from './result-blobs.js';

/**
 * Where each shard's lines lie in a finished batch's composed files. The finalizer composes the
 * segments in (kind, shard, epoch, seq) order, so the lines of one (kind, shard) — its *stream* —
 * are one contiguous byte range of that kind's file, in the order they were written; a position in
 * a stream (what a results cursor holds, docs/results.md) is therefore the same offset from the
 * start of that range. Written by the finalizer before the terminal write (so it exists whenever
 * the segments may be gone), as `batches/<id>/results-map.json`:
 *
 *   {"version":1,"shards":200,"output":{"bytes":123,"ranges":[[shard,start,end],…]},"error":{…}}
 *
 * Only shards with bytes of a kind are listed; the others have none. Idempotent: a finalization
 * redone by another replica composes the same bytes and writes the same map.
 */
export interface ResultMap {
  version: 1;
  /** Shards of the batch (those not listed under a kind have no line of it). */
  shards: number;
  output: KindMap;
  error: KindMap;
}

export interface KindMap {
  /** Size of the composed file (0: there is none). */
  bytes: number;
  /** [shard, start, end): the shard's lines in the file, ascending. */
  ranges: Array<[number, number, number]>;
}

/** Builds the map while the finalizer lists its parts (in compose order). */
export class ResultMapBuilder {
  readonly #kinds: Record<ResultKind, KindMap> = { output: { bytes: 0, ranges: [] }, error: { bytes: 0, ranges: [] } };

  /** A part of `bytes` bytes of shard `shardNo` follows the earlier ones in the file of `kind`. */
  add(kind: ResultKind, shardNo: number, bytes: number): void {
    if (bytes <= 0) return;
    const k = this.#kinds[kind];
    const last = k.ranges.at(-1);
    if (last && last[0] === shardNo) last[2] += bytes;
    else {
      if (last && last[0] > shardNo) throw new Error(`result map: shard ${shardNo} after shard ${last[0]}`);
      k.ranges.push([shardNo, k.bytes, k.bytes + bytes]);
    }
    k.bytes += bytes;
  }

  /** Bytes of `kind` added so far (= the composed file's size). */
  bytes(kind: ResultKind): number {
    return this.#kinds[kind].bytes;
  }

  build(shards: number): ResultMap {
    return { version: 1, shards, output: this.#kinds.output, error: this.#kinds.error };
  }
}

export async function writeResultMap(blobs: BlobStore, batchId: string, map: ResultMap): Promise<void> {
  await putBlob(blobs, resultMapKey(batchId), Buffer.from(JSON.stringify(map)));
}

/** The batch's map, or null when it has none (not finalized, or finalized by a BESH without maps). */
export async function readResultMap(blobs: BlobStore, batchId: string): Promise<ResultMap | null> {
  const raw = await readWhole(blobs, resultMapKey(batchId));
  if (raw === null) return null;
  const m = JSON.parse(raw.toString('utf8')) as ResultMap;
  if (m.version !== 1 || !Number.isInteger(m.shards) || !validKind(m.output) || !validKind(m.error)) throw new Error(`result map of ${batchId} is not valid`);
  return m;
}

function validKind(k: KindMap | undefined): boolean {
  return k !== undefined && Number.isSafeInteger(k.bytes) && Array.isArray(k.ranges) && k.ranges.every((r) => Array.isArray(r) && r.length === 3 && r.every(Number.isSafeInteger));
}

/** The byte range [start, end) of shard `shardNo` in the file of `kind` ([0, 0) when it has no line of that kind). */
export function shardRange(map: ResultMap, kind: ResultKind, shardNo: number): [number, number] {
  const ranges = map[kind].ranges;
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges[mid]![0] < shardNo) lo = mid + 1;
    else hi = mid;
  }
  const r = ranges[lo];
  return r !== undefined && r[0] === shardNo ? [r[1], r[2]] : [0, 0];
}
