import { close as closeFd, createReadStream, fsync, openSync, writeSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { promisify } from 'node:util';

import { LineScanner } from './line-scanner.js';

/**
 * Append-only writer of an output or error file. `append` buffers the line; once per event-loop
 * turn (setImmediate) everything appended meanwhile goes out in one synchronous `write(2)` to the
 * page cache (no fsync), where it survives a `kill -9`. `written()` resolves when the lines
 * appended so far are in the file: the engine holds a request's slot until then, so after a crash
 * only requests in flight are sent again.
 *
 * Why synchronous and grouped: on these machines a syscall costs tens of microseconds, so one
 * write per line cut end-to-end throughput by a third, while an asynchronous write added a
 * thread-pool round trip to every request's slot time. The file is created by the first write, so
 * it exists only once it has lines. `close()` fsyncs and closes. A write error is kept and thrown
 * by every later call.
 */
export class ResultWriter {
  /** Lines appended so far, including those the file had when opened. */
  lines: number;
  /** Bytes appended so far, including those the file had when opened. */
  bytes: number;

  private readonly path: string;
  private fd: number | null = null;
  private pending: string[] = [];
  private group: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | null = null;
  private scheduled = false;
  private closed = false;
  private error: Error | null = null;

  private constructor(path: string, lines: number, bytes: number) {
    this.path = path;
    this.lines = lines;
    this.bytes = bytes;
  }

  /**
   * Prepares appending to `path`. Pass `existing` from a `scanResultFile` of the same file;
   * without it the file is scanned here (and a torn last line truncated, as scanResultFile does).
   */
  static async open(path: string, existing?: { lines: number; bytes: number }): Promise<ResultWriter> {
    if (existing !== undefined) return new ResultWriter(path, existing.lines, existing.bytes);
    const scan = await scanFile(path, false);
    return new ResultWriter(path, scan.lines, scan.bytes);
  }

  /** Buffers one line ('\n' is added if missing); it is written at the end of this turn. */
  append(line: string): void {
    if (this.error !== null) throw this.error;
    if (this.closed) throw new Error(`ResultWriter for ${this.path} is closed`);
    if (line.length === 0 || line.charCodeAt(line.length - 1) !== 0x0a) line += '\n';
    this.pending.push(line);
    this.lines++;
    this.bytes += Buffer.byteLength(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.writePending);
    }
  }

  /** Resolves once every line appended so far is in the file (not fsynced). */
  written(): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.pending.length === 0) return Promise.resolve();
    if (this.group === null) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.group = { promise, resolve, reject };
    }
    return this.group.promise;
  }

  /** Writes what is pending, fsyncs and closes. Appending afterwards throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.writePending();
    this.closed = true;
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) {
      try {
        await promisify(fsync)(fd);
      } finally {
        await promisify(closeFd)(fd);
      }
    }
    if (this.error !== null) throw this.error;
  }

  private readonly writePending = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0 || this.error !== null) return;
    const lines = this.pending;
    const group = this.group;
    this.pending = [];
    this.group = null;
    try {
      const buf = Buffer.from(lines.length === 1 ? lines[0]! : lines.join(''), 'utf8');
      this.fd ??= openSync(this.path, 'a');
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off, buf.length - off);
      group?.resolve();
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      group?.reject(this.error);
    }
  };
}

export interface ResultFileScan {
  exists: boolean;
  /** Complete lines (after truncation). */
  lines: number;
  /** File size after truncation. */
  bytes: number;
  customIds: Set<string>;
  /** Bytes of a torn last line that were cut off (0 when the file ended with '\n'). */
  truncatedBytes: number;
}

/**
 * Reads an output/error file for resuming: counts its lines, collects their custom_ids and hands
 * each complete line to `onLine` (e.g. to re-add usage). A torn last line (no '\n', from a crash
 * mid-write) is cut off with `truncate`. A missing file gives `exists: false`.
 */
export async function scanResultFile(path: string, onLine?: (text: string) => void): Promise<ResultFileScan> {
  return scanFile(path, true, onLine);
}

/** Prefix our own lines start with; the custom_id is taken from it without parsing the body. */
const PREFIX = /^\{"id":"(?:[^"\\]|\\.)*","custom_id":"((?:[^"\\]|\\.)*)"/;
const PREFIX_BYTES = 4096;

async function scanFile(path: string, collectIds: boolean, onLine?: (text: string) => void): Promise<ResultFileScan> {
  const customIds = new Set<string>();
  const scanner = new LineScanner(Number.MAX_SAFE_INTEGER);
  const sink = (buf: Buffer, start: number, end: number): void => {
    if (start === end) return;
    let text: string | null = null;
    if (onLine !== undefined) {
      text = buf.toString('utf8', start, end);
      onLine(text);
    }
    if (!collectIds) return;
    const id = idFromPrefix(text ?? buf.toString('utf8', start, Math.min(end, start + PREFIX_BYTES))) ?? idFromJson(text ?? buf.toString('utf8', start, end));
    if (id !== null) customIds.add(id);
  };
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) scanner.push(chunk as Buffer, sink);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, lines: 0, bytes: 0, customIds, truncatedBytes: 0 };
    throw err;
  }
  // No scanner.end(): bytes after the last '\n' are a torn line, not a line.
  const keep = scanner.completeBytes;
  const torn = scanner.totalBytes - keep;
  if (torn > 0) await truncate(path, keep);
  return { exists: true, lines: scanner.line, bytes: keep, customIds, truncatedBytes: torn };
}

/** custom_id from the start of a line written by `result-line.ts`, or null. */
function idFromPrefix(text: string): string | null {
  const m = PREFIX.exec(text);
  if (m === null) return null;
  const raw = m[1]!;
  if (raw.indexOf('\\') === -1) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return null;
  }
}

/** custom_id of any JSON line, or null. */
function idFromJson(text: string): string | null {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null) return null;
    const id = (v as Record<string, unknown>)['custom_id'];
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}
