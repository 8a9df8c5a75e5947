import { createReadStream } from 'node:fs';
import { type FileHandle, open, truncate } from 'node:fs/promises';

import { LineScanner } from './line-scanner.js';

/** Past this many buffered bytes `needsDrain` is true (appends are still accepted). */
const DRAIN_BYTES = 1024 * 1024;
/** At most this much is joined into one write. */
const MAX_GROUP_BYTES = 8 * 1024 * 1024;

interface Waiter {
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Append-only writer of an output or error file. `append` only buffers; one `setImmediate` later
 * everything appended meanwhile goes out as one write (no fsync per line), with at most one write
 * in flight. The file is created (flag 'a') by the first write, so it exists only once it has
 * lines. `close()` flushes, fsyncs and closes. A write error is kept and thrown by every later
 * append / flush / drain / close.
 */
export class ResultWriter {
  /** Lines appended so far, including those the file had when opened. */
  lines: number;
  /** Bytes appended so far, including those the file had when opened. */
  bytes: number;

  private readonly path: string;
  private fh: FileHandle | null = null;
  private pending: string[] = [];
  private pendingBytes = 0;
  private inFlightBytes = 0;
  /** Bytes appended / written since open, to tell when a flush() has been satisfied. */
  private appendedSeq = 0;
  private writtenSeq = 0;
  private scheduled = false;
  private writing = false;
  private closing = false;
  private error: Error | null = null;
  private waiters: Waiter[] = [];

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

  /** Buffers one line ('\n' is added if missing). Never blocks; see `needsDrain`. */
  append(line: string): void {
    if (this.error !== null) throw this.error;
    if (this.closing) throw new Error(`ResultWriter for ${this.path} is closed`);
    if (line.length === 0 || line.charCodeAt(line.length - 1) !== 0x0a) line += '\n';
    const n = Buffer.byteLength(line);
    this.pending.push(line);
    this.pendingBytes += n;
    this.appendedSeq += n;
    this.lines++;
    this.bytes += n;
    if (!this.scheduled && !this.writing) {
      this.scheduled = true;
      setImmediate(this.kick);
    }
  }

  /** True while more than ~1 MiB waits to be written; `await drain()` then. */
  get needsDrain(): boolean {
    return this.pendingBytes + this.inFlightBytes > DRAIN_BYTES;
  }

  /** Resolves once at most ~1 MiB is left unwritten. */
  async drain(): Promise<void> {
    if (!this.needsDrain) {
      if (this.error !== null) throw this.error;
      return;
    }
    await this.waitFor(this.appendedSeq - DRAIN_BYTES);
  }

  /** Resolves once everything appended so far is written (not fsynced). */
  async flush(): Promise<void> {
    await this.waitFor(this.appendedSeq);
  }

  /** Flush, fsync, close. Appending afterwards throws. */
  async close(): Promise<void> {
    this.closing = true;
    try {
      await this.flush();
      if (this.fh !== null) await this.fh.sync();
    } finally {
      const fh = this.fh;
      this.fh = null;
      if (fh !== null) await fh.close();
    }
  }

  private waitFor(target: number): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.writtenSeq >= target) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ target, resolve, reject }));
  }

  private readonly kick = (): void => {
    this.scheduled = false;
    void this.writeLoop();
  };

  private async writeLoop(): Promise<void> {
    if (this.writing || this.error !== null) return;
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        const group = this.takeGroup();
        const buf = Buffer.from(group.length === 1 ? group[0]! : group.join(''), 'utf8');
        this.inFlightBytes = buf.length;
        this.fh ??= await open(this.path, 'a');
        for (let off = 0; off < buf.length; ) {
          const { bytesWritten } = await this.fh.write(buf, off, buf.length - off, null);
          off += bytesWritten;
        }
        this.inFlightBytes = 0;
        this.writtenSeq += buf.length;
        this.settle();
      }
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      this.settle();
    } finally {
      this.writing = false;
    }
  }

  private takeGroup(): string[] {
    if (this.pendingBytes <= MAX_GROUP_BYTES) {
      const group = this.pending;
      this.pending = [];
      this.pendingBytes = 0;
      return group;
    }
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length && (n === 0 || bytes < MAX_GROUP_BYTES)) bytes += Buffer.byteLength(this.pending[n++]!);
    this.pendingBytes -= bytes;
    return this.pending.splice(0, n);
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.error !== null) w.reject(this.error);
      else if (this.writtenSeq >= w.target) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }
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
