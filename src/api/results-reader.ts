import { Readable } from 'node:stream';

import { batchNotFound, type BatchRecord, type BatchStatus, BeshError, isTerminal } from '../domain/index.js';
import { type KindMap, readResultMap, type ResultMap, shardRange } from '../engine/result-map.js';
import { resultFileKey, type ResultKind } from '../store/blob-keys.js';
import type { BlobStore } from '../store/blob-store.js';
import type { MetaStore, SegmentRecord, ShardRecord } from '../store/meta-store.js';
import { cursorPositions, type CursorToken, invalidCursor, type ResultsCursor } from './results-cursor.js';

/**
 * What one `GET /v1/batches/{id}/results` sends, fixed before the first byte: the byte ranges of
 * blobs that hold the lines after the cursor (segments read to their current complete length, or
 * the composed files through the batch's result map), and the cursor of their end.
 */
export interface ResultsPlan {
  pieces: Piece[];
  bytes: number;
  cursor: ResultsCursor;
  /** The batch has ended and the cursor covers every line of the kinds asked for: nothing more will come. */
  complete: boolean;
  status: BatchStatus;
}

/** Bytes [start, end) of the blob `key`: bytes [streamStart, streamStart + end − start) of the (kind, shard) stream. */
export interface Piece {
  key: string;
  start: number;
  end: number;
  /** Set for a segment, which finalization may remove while it is read (then read from the composed file). */
  segment: { kind: ResultKind; shardNo: number; streamStart: number } | null;
}

export class GoneError extends BeshError {
  readonly status = 410;
  readonly type = 'invalid_request_error' as const;
  override readonly shouldRetry = false;
}

export interface ReaderDeps {
  store: MetaStore;
  blobs: BlobStore;
}

/** Shards listed one query each up to this many; above it, one query lists every segment of the batch. */
const PER_SHARD_LISTING = 16;
/** Backward reads when looking for the last complete line of a growing segment. */
const TAIL_CHUNK = 64 * 1024;

export async function planResults(deps: ReaderDeps, first: BatchRecord, token: CursorToken | null, kinds: readonly ResultKind[]): Promise<ResultsPlan> {
  let batch = first;
  for (;;) {
    if (isTerminal(batch.status)) {
      const map = await readResultMap(deps.blobs, batch.id);
      if (map !== null) return planFinal(deps, batch, map, token, kinds);
    }
    const shards = await deps.store.listShards(batch.id);
    const cursor = cursorPositions(token, shards.length);
    const segments = await listSegments(deps.store, batch.id, shards, cursor, kinds);
    if (isTerminal(batch.status) && shards.length > 0 && segments.length === 0 && (batch.outputFileId !== null || batch.errorFileId !== null)) {
      return planLegacy(deps, batch, token, shards.length, kinds);
    }
    const plan = await planLive(deps, shards, segments, cursor, kinds);
    // Read after the segments were listed and measured: a batch still unfinished had none removed.
    const now = await deps.store.getBatch(batch.id);
    if (now === null) throw batchNotFound(batch.id);
    if (isTerminal(now.status) && !isTerminal(batch.status)) {
      batch = now; // finalized meanwhile: its segments may be gone, read the files
      continue;
    }
    return { ...plan, complete: isTerminal(now.status), status: now.status };
  }
}

/** The segments that can hold lines the cursor has not covered (shards ever claimed, not closed for every kind asked). */
async function listSegments(store: MetaStore, batchId: string, shards: readonly ShardRecord[], cursor: ResultsCursor, kinds: readonly ResultKind[]): Promise<SegmentRecord[]> {
  const kind = kinds.length === 1 ? kinds[0] : undefined;
  const wanted = shards.filter((s) => s.epoch > 0 && kinds.some((k) => !cursor[k].closed.has(s.shardNo)));
  if (wanted.length === 0) return [];
  if (wanted.length > PER_SHARD_LISTING) return store.listSegments(batchId, kind === undefined ? {} : { kind });
  const out: SegmentRecord[] = [];
  for (const s of wanted) out.push(...(await store.listSegments(batchId, kind === undefined ? { shardNo: s.shardNo } : { shardNo: s.shardNo, kind })));
  return out;
}

async function planLive(
  deps: ReaderDeps,
  shards: readonly ShardRecord[],
  segments: readonly SegmentRecord[],
  cursor: ResultsCursor,
  kinds: readonly ResultKind[],
): Promise<Omit<ResultsPlan, 'complete' | 'status'>> {
  const streams = new Map<string, SegmentRecord[]>();
  for (const seg of segments) {
    const k = `${seg.kind}:${seg.shardNo}`;
    let list = streams.get(k);
    if (!list) streams.set(k, (list = []));
    list.push(seg);
  }
  for (const kind of kinds) {
    for (const s of cursor[kind].closed) if (shards[s]?.state !== 'done') throw invalidCursor('names results this batch does not have');
  }
  const pieces: Piece[] = [];
  for (const kind of kinds) {
    const pos = cursor[kind];
    for (const shard of shards) {
      const s = shard.shardNo;
      if (pos.closed.has(s)) continue;
      const from = pos.offsets.get(s) ?? 0;
      let at = 0; // stream offset of the segment's first byte
      let sealed = true;
      for (const seg of (streams.get(`${kind}:${s}`) ?? []).sort(byEpochSeq)) {
        const lower = Math.max(0, from - at);
        const len = seg.bytes ?? (await completeLength(deps.blobs, seg.blobKey, lower));
        if (seg.bytes === null) sealed = false;
        if (at + len > from && len > 0) pieces.push({ key: seg.blobKey, start: lower, end: len, segment: { kind, shardNo: s, streamStart: at + lower } });
        at += len;
      }
      if (from > at) throw invalidCursor('is ahead of the results of this batch');
      if (shard.state === 'done' && sealed) {
        pos.closed.add(s);
        pos.offsets.delete(s);
      } else if (at > 0) pos.offsets.set(s, at);
    }
  }
  return { pieces, bytes: total(pieces), cursor };
}

const byEpochSeq = (a: SegmentRecord, b: SegmentRecord): number => a.epoch - b.epoch || a.seq - b.seq;

/** The finalized batch: each stream is its shard's range of the composed file (result map). */
async function planFinal(deps: ReaderDeps, batch: BatchRecord, map: ResultMap, token: CursorToken | null, kinds: readonly ResultKind[]): Promise<ResultsPlan> {
  const cursor = cursorPositions(token, map.shards);
  const pieces: Piece[] = [];
  for (const kind of kinds) {
    const pos = cursor[kind];
    const key = map[kind].bytes > 0 ? await composedFile(deps, batch, kind, map[kind]) : null;
    for (let s = 0; s < map.shards; s++) {
      if (pos.closed.has(s)) continue;
      const [start, end] = shardRange(map, kind, s);
      const from = pos.offsets.get(s) ?? 0;
      if (from > end - start) throw invalidCursor('is ahead of the results of this batch');
      if (key !== null && start + from < end) addPiece(pieces, { key, start: start + from, end, segment: null });
      pos.closed.add(s);
      pos.offsets.delete(s);
    }
  }
  return { pieces, bytes: total(pieces), cursor, complete: true, status: batch.status };
}

/** Finalized before result maps existed: only a read from the start can be served (its files, whole). */
async function planLegacy(deps: ReaderDeps, batch: BatchRecord, token: CursorToken | null, shards: number, kinds: readonly ResultKind[]): Promise<ResultsPlan> {
  const cursor = cursorPositions(token, shards);
  const pieces: Piece[] = [];
  for (const kind of kinds) {
    const pos = cursor[kind];
    if (pos.closed.size === shards) continue;
    if (pos.closed.size > 0 || pos.offsets.size > 0) throw invalidCursor('cannot be continued: this batch was finalized by an earlier BESH; read it from the start');
    const fileId = kind === 'output' ? batch.outputFileId : batch.errorFileId;
    if (fileId !== null) {
      const f = await deps.store.getFile(fileId);
      const size = f ? await deps.blobs.size(f.blobKey) : null;
      if (f === null || size === null) throw resultFileGone(batch.id, kind);
      if (size > 0) pieces.push({ key: f.blobKey, start: 0, end: size, segment: null });
    }
    for (let s = 0; s < shards; s++) pos.closed.add(s);
  }
  return { pieces, bytes: total(pieces), cursor, complete: true, status: batch.status };
}

/** The blob of the batch's composed file of `kind`; 410 once the file was deleted or expired. */
async function composedFile(deps: ReaderDeps, batch: BatchRecord, kind: ResultKind, k: KindMap): Promise<string> {
  const fileId = kind === 'output' ? batch.outputFileId : batch.errorFileId;
  const f = fileId === null ? null : await deps.store.getFile(fileId);
  if (f === null || f.bytes !== k.bytes) throw resultFileGone(batch.id, kind);
  return f.blobKey;
}

export const resultFileGone = (batchId: string, kind: ResultKind): GoneError =>
  new GoneError(`The ${kind === 'output' ? 'output' : 'error'} file of batch ${batchId} was deleted or has expired: its results can no longer be read.`, {
    param: null,
    code: 'result_file_deleted',
  });

function addPiece(pieces: Piece[], p: Piece): void {
  const last = pieces.at(-1);
  if (last && last.segment === null && p.segment === null && last.key === p.key && last.end === p.start) last.end = p.end;
  else pieces.push(p);
}

const total = (pieces: readonly Piece[]): number => pieces.reduce((n, p) => n + (p.end - p.start), 0);

/**
 * Bytes of the complete lines of a segment still being written (local disk: its size at seal is
 * not recorded yet): up to its last '\n'. `lower` is known to end a line (or be 0); a segment not
 * created yet has 0.
 */
export async function completeLength(blobs: BlobStore, key: string, lower: number): Promise<number> {
  const size = await blobs.size(key);
  if (size === null) return 0;
  if (size <= lower) return size;
  let end = size;
  while (end > lower) {
    const start = Math.max(lower, end - TAIL_CHUNK);
    const chunks: Buffer[] = [];
    try {
      for await (const c of blobs.openRead(key, { start, end: end - 1 })) chunks.push(c as Buffer);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return 0;
      throw err;
    }
    const buf = Buffer.concat(chunks);
    const nl = buf.lastIndexOf(0x0a);
    if (nl !== -1) return start + nl + 1;
    end = start;
  }
  return lower;
}

/**
 * The bytes of a plan, as one stream. A segment removed meanwhile (the batch was finalized while
 * this was being sent) is read on from the composed file, where the same bytes now are.
 */
export function streamPlan(blobs: BlobStore, batchId: string, pieces: readonly Piece[]): Readable {
  async function* bytes(): AsyncGenerator<Buffer> {
    let map: ResultMap | null = null;
    for (const p of pieces) {
      const want = p.end - p.start;
      let sent = 0;
      try {
        for await (const chunk of blobs.openRead(p.key, { start: p.start, end: p.end - 1 })) {
          const c = (chunk as Buffer).subarray(0, want - sent);
          sent += c.length;
          if (c.length > 0) yield c;
        }
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ENOENT' || p.segment === null) throw err;
        map ??= await readResultMap(blobs, batchId);
        if (map === null) throw err;
        const { kind, shardNo, streamStart } = p.segment;
        const [start, end] = shardRange(map, kind, shardNo);
        const from = start + streamStart + sent;
        const to = start + streamStart + want;
        if (to > end) throw err;
        for await (const chunk of blobs.openRead(resultFileKey(batchId, kind), { start: from, end: to - 1 })) {
          const c = (chunk as Buffer).subarray(0, want - sent);
          sent += c.length;
          if (c.length > 0) yield c;
        }
      }
      if (sent !== want) throw new Error(`results of ${batchId}: ${p.key} gave ${sent} of ${want} bytes`);
    }
  }
  return Readable.from(bytes(), { objectMode: false });
}
