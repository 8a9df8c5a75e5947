import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';

/** One batch input line; with `padTo`, the user message is padded so the line (with its \n) is that long. */
export function requestLine(i: number, padTo = 0): string {
  const head = `{"custom_id":"r${i}","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-model","messages":[{"role":"user","content":"question ${i}`;
  const tail = '"}],"max_tokens":16}}';
  const pad = padTo - (head.length + tail.length + 1);
  return pad > 0 ? `${head} ${'x'.repeat(pad - 1)}${tail}\n` : `${head}${tail}\n`;
}

/** Writes `count` request lines to `path` as a stream: the 1M-line and 200 MB files are never held in memory. Returns the file size in bytes. */
export function writeRequestFile(path: string, count: number, padTo = 0): Promise<number> {
  function* lines(): Generator<string> {
    for (let i = 0; i < count; i++) yield requestLine(i, padTo);
  }
  return writeLinesFile(path, lines());
}

/**
 * Writes `lines` (each with its '\n') to `path` in ~1 MiB writes, waiting for `drain` when the
 * stream says so. Returns the file size in bytes.
 */
export async function writeLinesFile(path: string, lines: Iterable<string>): Promise<number> {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  let bytes = 0;
  try {
    let chunk = '';
    for (const line of lines) {
      chunk += line;
      if (chunk.length >= 1 << 20) {
        bytes += Buffer.byteLength(chunk);
        if (!out.write(chunk)) await once(out, 'drain');
        chunk = '';
      }
    }
    bytes += Buffer.byteLength(chunk);
    out.end(chunk);
    await finished(out);
  } catch (err) {
    out.destroy();
    throw err;
  }
  return bytes;
}

/** Lines of `lineBytes` each, enough to reach `targetBytes`. */
export const linesFor = (targetBytes: number, lineBytes: number): number => Math.ceil(targetBytes / lineBytes);
