import { createHash } from 'node:crypto';

import { InvalidRequestError } from '../domain/index.js';
import type { ResultKind } from '../store/blob-keys.js';

/**
 * The cursor of `GET /v1/batches/{id}/results` (docs/results.md). A batch's results are, per kind
 * and shard, one *stream*: the shard's segments of that kind in (epoch, seq) order, read to their
 * complete lines — which is also, byte for byte, the shard's range of the composed file once the
 * batch is finalized. Within a stream, segments are registered one after the other and only ever
 * grow at the end (the last one, on local disk), so a position in it is just a byte count. A cursor
 * is, per kind: the shards whose stream has been read to its end for good (the shard is done), and
 * for the others the bytes of their stream read so far. It needs no registration order across
 * shards, so segments that commit out of order (replicas, a PostgreSQL sequence assigned before
 * commit) can never be skipped.
 *
 * Encoding: base64url of
 *   u8 version (1)
 *   per kind (output, then error):
 *     varint n, then n closed shard ranges: varint gap since the previous range's end, varint length − 1
 *     varint m, then m (shard, offset) pairs, shards ascending: varint shard gap, varint offset (> 0)
 *   6 bytes: SHA-256 of the batch id and the bytes above (a cursor of another batch, or altered, is refused)
 */
export interface StreamPositions {
  /** Shards whose stream of this kind was read to its end, and is done. */
  closed: Set<number>;
  /** Bytes read of the other shards' streams (absent: 0). */
  offsets: Map<number, number>;
}

export type ResultsCursor = Record<ResultKind, StreamPositions>;

const VERSION = 1;
const TAG_BYTES = 6;
/** Far above any real cursor (a few bytes per running shard), below the 16 KiB of headers and URL Node accepts. */
const MAX_TOKEN_CHARS = 8 * 1024;
const MAX_SHARD = 2 ** 31;
const KINDS: readonly ResultKind[] = ['output', 'error'];

export const emptyCursor = (): ResultsCursor => ({
  output: { closed: new Set(), offsets: new Map() },
  error: { closed: new Set(), offsets: new Map() },
});

export function encodeCursor(batchId: string, c: ResultsCursor): string {
  const out: number[] = [VERSION];
  for (const kind of KINDS) {
    const { closed, offsets } = c[kind];
    const ranges = toRanges([...closed].sort((a, b) => a - b));
    varint(out, ranges.length);
    let end = 0;
    for (const [start, len] of ranges) {
      varint(out, start - end);
      varint(out, len - 1);
      end = start + len;
    }
    const open = [...offsets].filter(([s, o]) => o > 0 && !closed.has(s)).sort((a, b) => a[0] - b[0]);
    varint(out, open.length);
    let prev = 0;
    for (const [shard, offset] of open) {
      varint(out, shard - prev);
      varint(out, offset);
      prev = shard;
    }
  }
  const body = Buffer.from(out);
  return Buffer.concat([body, tag(batchId, body)]).toString('base64url');
}

/** A parsed cursor, its closed shards still as runs (a forged cursor must not make us expand 2³¹ shards). */
export type CursorToken = Record<ResultKind, { ranges: Array<[number, number]>; offsets: Map<number, number> }>;

/** Parses `?after=`; a malformed cursor, or one of another batch, is a 400. */
export function decodeCursor(batchId: string, token: string): CursorToken {
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalidCursor('is malformed');
  const raw = Buffer.from(token, 'base64url');
  if (raw.length < 1 + TAG_BYTES) throw invalidCursor('is malformed');
  const body = raw.subarray(0, raw.length - TAG_BYTES);
  if (!tag(batchId, body).equals(raw.subarray(raw.length - TAG_BYTES))) throw invalidCursor('is not a cursor of this batch');
  const r = { buf: body, at: 0 };
  if (readVarint(r) !== VERSION) throw invalidCursor('has an unknown version');
  const out = {} as CursorToken;
  for (const kind of KINDS) {
    const ranges: Array<[number, number]> = [];
    let end = 0;
    for (let n = readVarint(r); n > 0; n--) {
      const start = end + readVarint(r);
      const len = readVarint(r) + 1;
      if (start + len > MAX_SHARD || (ranges.length > 0 && start === end)) throw invalidCursor('is malformed');
      ranges.push([start, len]);
      end = start + len;
    }
    const offsets = new Map<number, number>();
    let prev = 0;
    for (let m = readVarint(r), first = true; m > 0; m--, first = false) {
      const gap = readVarint(r);
      if (!first && gap === 0) throw invalidCursor('is malformed');
      const shard = prev + gap;
      const offset = readVarint(r);
      if (shard >= MAX_SHARD || offset === 0 || ranges.some(([a, l]) => shard >= a && shard < a + l)) throw invalidCursor('is malformed');
      offsets.set(shard, offset);
      prev = shard;
    }
    out[kind] = { ranges, offsets };
  }
  if (r.at !== body.length) throw invalidCursor('is malformed');
  return out;
}

/** The positions of a parsed cursor in a batch of `shards` shards; naming a shard the batch does not have is a 400. */
export function cursorPositions(t: CursorToken | null, shards: number): ResultsCursor {
  const c = emptyCursor();
  if (t === null) return c;
  for (const kind of KINDS) {
    const { ranges, offsets } = t[kind];
    const last = ranges.at(-1);
    if ((last && last[0] + last[1] > shards) || [...offsets.keys()].some((s) => s >= shards)) throw invalidCursor('names results this batch does not have');
    for (const [start, len] of ranges) for (let s = start; s < start + len; s++) c[kind].closed.add(s);
    for (const [s, o] of offsets) c[kind].offsets.set(s, o);
  }
  return c;
}

export const invalidCursor = (why: string): InvalidRequestError =>
  new InvalidRequestError(`The cursor in 'after' ${why}; use the x-besh-cursor header of an earlier answer for this batch, or no 'after' to read from the start.`, {
    param: 'after',
    code: 'invalid_cursor',
  });

function tag(batchId: string, body: Buffer): Buffer {
  return createHash('sha256').update('besh results cursor\0').update(batchId).update('\0').update(body).digest().subarray(0, TAG_BYTES);
}

/** Sorted distinct numbers → [start, length] runs. */
function toRanges(sorted: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const s of sorted) {
    const last = out.at(-1);
    if (last && last[0] + last[1] === s) last[1]++;
    else out.push([s, 1]);
  }
  return out;
}

/** Unsigned LEB128 for any safe integer (no 32-bit bit operations). */
function varint(out: number[], n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`cursor: not a varint: ${n}`);
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function readVarint(r: { buf: Buffer; at: number }): number {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (r.at >= r.buf.length) throw invalidCursor('is malformed');
    const b = r.buf[r.at++]!;
    n += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      if (!Number.isSafeInteger(n)) throw invalidCursor('is malformed');
      return n;
    }
    scale *= 0x80;
  }
  throw invalidCursor('is malformed');
}
