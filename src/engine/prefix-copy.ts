import { once } from 'node:events';

import { isBlankLine, readLines } from '../jsonl/index.js';
import type { BlobStore } from '../store/blob-store.js';

/** Bytes of the copy assembled in memory per pass over the input. */
const WINDOW_BYTES = 64 * 1024 * 1024;

/**
 * Writes the input's request lines in the order of a PrefixPlan (each line at `destinations[i]`,
 * the i-th request line of the input, followed by '\n') as a new blob at `targetKey`, with bounded
 * memory: each pass over the input fills one window of the copy (WINDOW_BYTES, plus one line) and
 * streams it out, so the copy is written front to back without a temporary file and without one
 * write per line. A copy of C bytes takes ⌈C / 64 MiB⌉ passes over the input.
 */
export async function writeReorderedCopy(
  blobs: BlobStore,
  inputKey: string,
  targetKey: string,
  plan: { destinations: Float64Array; bytes: number },
  opts: { maxLineBytes: number; signal: AbortSignal; windowBytes?: number },
): Promise<void> {
  const window = opts.windowBytes ?? WINDOW_BYTES;
  const upload = blobs.createUpload(targetKey);
  try {
    let start = 0;
    while (start < plan.bytes) {
      const { chunk, next } = await fillWindow(blobs, inputKey, plan.destinations, start, Math.min(plan.bytes, start + window), opts);
      if (!upload.stream.write(chunk)) await once(upload.stream, 'drain');
      start = next;
    }
    upload.stream.end();
    await upload.commit();
  } catch (err) {
    await upload.abort();
    throw err;
  }
}

/**
 * One pass: the lines whose place in the copy starts in [start, end), laid out from `start`. The
 * window ends where its last line ends (lines are never cut), which is where the next one starts.
 */
async function fillWindow(
  blobs: BlobStore,
  inputKey: string,
  destinations: Float64Array,
  start: number,
  end: number,
  opts: { maxLineBytes: number; signal: AbortSignal },
): Promise<{ chunk: Buffer; next: number }> {
  const buf = Buffer.allocUnsafe(end - start + opts.maxLineBytes + 1);
  let filled = 0;
  let i = 0;
  const stream = blobs.openRead(inputKey);
  try {
    for await (const raw of readLines(stream, { maxLineBytes: opts.maxLineBytes })) {
      opts.signal.throwIfAborted();
      if (isBlankLine(raw.text)) continue;
      const d = destinations[i++]!;
      if (d < start || d >= end) continue;
      const at = d - start;
      const n = buf.write(raw.text, at, 'utf8');
      buf[at + n] = 0x0a;
      filled = Math.max(filled, at + n + 1);
    }
  } finally {
    stream.destroy();
  }
  return { chunk: buf.subarray(0, filled), next: start + filled };
}
