import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';

import { isBlankBytes } from './blank-line.js';
import { JsonlError } from './errors.js';
import { LineScanner, type LineSink } from './line-scanner.js';

export interface UploadCheckerOptions {
  maxLineBytes: number;
  /** Every line must be a JSON object (purpose `batch`). */
  requireJson: boolean;
}

const MAX_PARSER_MESSAGE = 200;

/**
 * Passes an upload's bytes through unchanged while checking its lines with the same rules as
 * `readLines` (shared `LineScanner`): valid UTF-8, not too long, no blank line before the last
 * non-blank one (any number of trailing blank lines is fine), and with `requireJson` every line
 * a JSON object. A file without any non-blank line fails with `empty_file`. Failures are
 * `JsonlError`s given to the stream callback, so a pipeline fails with them.
 * After the stream finishes, `lines` (non-blank lines) and `bytes` are final.
 */
export class UploadChecker extends Transform {
  /** Non-blank lines seen so far. */
  lines = 0;
  /** Bytes passed through so far. */
  bytes = 0;

  private readonly scanner: LineScanner;
  private readonly requireJson: boolean;
  /** First line of the current run of blank lines; an error only if a non-blank line follows. */
  private firstBlank: number | null = null;
  private readonly sink: LineSink;
  /** Bytes `[validFrom, validTo)` of chunk `validChunk` hold whole lines known to be valid UTF-8. */
  private validChunk: Buffer | null = null;
  private validFrom = 0;
  private validTo = 0;
  /** With requireJson: the current chunk decoded as latin1 (byte offsets = char offsets). */
  private chunk: Buffer | null = null;
  private chunkText: string | null = null;

  constructor(opts: UploadCheckerOptions) {
    super();
    this.scanner = new LineScanner(opts.maxLineBytes);
    this.requireJson = opts.requireJson;
    this.sink = (buf, start, end, line) => this.checkLine(buf, start, end, line);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.markValidUtf8(chunk);
    this.chunk = chunk;
    this.chunkText = null;
    try {
      this.scanner.push(chunk, this.sink);
    } catch (err) {
      callback(err as Error);
      return;
    } finally {
      this.chunk = this.validChunk = null;
      this.chunkText = null;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.scanner.end(this.sink);
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (this.lines === 0) {
      callback(new JsonlError('empty_file', null, 'The file is empty; it must contain at least one line.'));
      return;
    }
    callback();
  }

  /**
   * Checks the whole lines of a chunk (after its first '\n', up to its last) for UTF-8 at once:
   * '\n' never occurs inside a multi-byte character, so they are valid iff each line is. Lines
   * outside that span, or in a chunk that fails, are checked one by one to find the bad one.
   */
  private markValidUtf8(chunk: Buffer): void {
    this.validChunk = null;
    const first = chunk.indexOf(0x0a);
    if (first === -1) return;
    const last = chunk.lastIndexOf(0x0a);
    if (last - first < 2 || !isUtf8(chunk.subarray(first + 1, last))) return;
    this.validChunk = chunk;
    this.validFrom = first + 1;
    this.validTo = last;
  }

  private checkLine(buf: Buffer, start: number, end: number, line: number): void {
    const known = buf === this.validChunk && start >= this.validFrom && end <= this.validTo;
    if (!known && !isUtf8(buf.subarray(start, end))) {
      throw new JsonlError('invalid_utf8', line, `Line ${line} is not valid UTF-8.`);
    }
    if (isBlankBytes(buf, start, end)) {
      this.firstBlank ??= line;
      return;
    }
    if (this.firstBlank !== null) {
      const blank = this.firstBlank;
      throw new JsonlError('blank_line', blank, `Line ${blank} is empty; every line must be one JSON request.`);
    }
    this.lines++;
    if (!this.requireJson) return;
    let latin1: string;
    if (buf === this.chunk) {
      this.chunkText ??= buf.toString('latin1');
      latin1 = this.chunkText.slice(start, end);
    } else latin1 = buf.toString('latin1', start, end);
    checkJsonObject(latin1, buf, start, end, line);
  }
}

/**
 * The line is valid UTF-8 by now, so it is valid JSON iff its latin1 decoding is: bytes >= 0x80
 * only ever occur inside strings, where JSON accepts any char >= U+0020. Latin1 decoding is
 * cheaper and gives a one-byte string, which V8 parses faster. Errors are re-parsed as UTF-8 for
 * a readable message.
 */
function checkJsonObject(latin1: string, buf: Buffer, start: number, end: number, line: number): void {
  let value: unknown;
  try {
    value = JSON.parse(latin1);
  } catch {
    let why = 'Unexpected end of JSON input';
    try {
      JSON.parse(buf.toString('utf8', start, end));
    } catch (err) {
      why = truncate(err instanceof Error ? err.message : String(err), MAX_PARSER_MESSAGE);
    }
    throw new JsonlError('invalid_json_line', line, `Line ${line} is not valid JSON: ${why}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const found = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new JsonlError('invalid_json_line', line, `Line ${line} is not a JSON object (found ${found}); every line must be one JSON request.`);
  }
}

const truncate = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}…` : s);
